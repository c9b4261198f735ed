#!/usr/bin/env python
"""Build throughput and memory benchmark: sweaug vs Hugging Face ``datasets`` vs a bare codec loop.

    python benchmarks/build_throughput.py [--clips 2000] [--workdir DIR] [--keep]
                                          [--rss-scale 10] [--profile] [--no-diagnostic]

One run does:

1. Makes (once; cached in ``--workdir``) a Common Voice 17.0 sv-SE layout of ``--clips`` 48 kHz
   mono mp3 clips, 2-6 s each, spoken by espeak-ng (Swedish voice, one voice variant, pitch,
   speed and gain per speaker), every clip a distinct sentence; train/dev/test TSVs split by
   speaker (speaker-disjoint, no shared sentences: the leakage guard should drop nothing) and
   ``clip_durations.tsv``.
2. Turns it into 16 kHz mono 16-bit FLAC WebDataset shards (``<key>.flac`` + ``<key>.json``)
   three ways, each in a fresh subprocess (import time included):
     a. ``sweaug build --workers 1`` and ``--workers 2``;
     b. ``datasets``: load_dataset("csv", ..., quoting=QUOTE_NONE) -> add the clip path column ->
        cast_column("audio", Audio(sampling_rate=16000)) -> map to FLAC bytes -> tarfile shards;
     c. a bare loop: soundfile decode -> soxr.resample (HQ) -> soundfile FLAC -> one tar.
   CPU time is the user+sys of the whole process tree: each run is started under a small
   wrapper that makes itself a child subreaper (PR_SET_CHILD_SUBREAPER), so that orphaned
   grandchildren (the forkserver and its pool workers) are reaped by it and their rusage counted;
   the wrapper reports getrusage(RUSAGE_CHILDREN).
3. Prints audio seconds, CPU seconds, wall seconds, audio-s per CPU-s and per wall-s, and the
   target ratios (PASS/FAIL): sweaug(1 worker)/datasets >= 3x and sweaug(1 worker)/bare loop
   >= 0.7x in audio-s per CPU-s; sweaug 2-worker / 1-worker wall speed >= 1.7x. With
   ``--diagnostic`` (default on) also ``--workers 2 --shard-samples 200``, no target: sweaug's
   partitions are ``--shard-samples`` (2000) records, so a 2,000-clip input has only 3 of them
   (one per split) and the 2-worker speed-up is bounded by the train partition.
4. Peak RSS of ``sweaug build --workers 1`` on the 1x input and on an ``--rss-scale`` x input
   (hard links of the 1x clips under new names; ``--rss-scale 0`` skips it): ru_maxrss of the
   largest process, plus the sampled peak of the whole tree's summed RSS (psutil).

Then checks that the three methods wrote the same samples (same keys, all 16 kHz mono PCM_16
FLAC, lengths within a few samples). Outputs are deleted at the end unless ``--keep``; the
generated inputs stay in the workdir for the next run. Needs espeak-ng, soundfile (with MP3),
soxr, numpy, datasets + torchcodec; psutil optional (tree RSS).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RELEASE = "cv-corpus-17.0-2024-03-15"
LOCALE = "sv-SE"
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
HEADER = ["client_id", "path", "sentence_id", "sentence", "sentence_domain", "up_votes",
          "down_votes", "age", "gender", "accents", "variant", "locale", "segment"]
GEN_VERSION = 1  # bump when the generated input changes
SRC_SR = 48_000
FIRST_ID = 40_000_000
TARGET_VS_DATASETS = 3.0
TARGET_VS_BARE = 0.7
TARGET_SCALING = 1.7
RSS_FLAT = 1.25  # peak RSS at N x clips / at 1 x below this counts as flat

# ---- the synthetic Common Voice input ----------------------------------------------------------

SUBJECTS = ["Den gamla fiskaren", "Min syster", "Läraren i byn", "En liten pojke", "Vår granne",
            "Hela familjen", "Den unga läkaren", "Kocken på hotellet", "Farfar", "Studenten",
            "En glad flicka", "Bagaren", "Journalisten", "Min bästa vän", "Den nya chefen",
            "Musikern", "Brevbäraren", "Konstnären", "Bonden", "Mormor", "Vaktmästaren",
            "Tjejen från Umeå", "Killen i kassan", "Sjuksköterskan"]
VERBS = ["läser en bok", "köper färskt bröd", "målar ett staket", "skriver ett långt brev",
         "lagar middag", "spelar fiol", "planterar tomater", "letar efter nycklarna",
         "bygger en koja", "tvättar bilen", "sjunger en visa", "ringer till sin bror",
         "städar köket", "bär in ved", "väntar på bussen", "fotograferar fåglar",
         "reparerar cykeln", "packar väskan", "dricker kaffe", "plockar blåbär",
         "övar på pianot", "skottar snö", "matar katten", "stickar en tröja"]
PLACES = ["vid sjön", "i skogen", "på torget", "hemma i köket", "utanför skolan",
          "på stationen", "i trädgården", "nere vid hamnen", "på vinden", "i biblioteket",
          "bakom ladan", "uppe på fjället", "mitt i stan", "på balkongen", "vid kyrkan",
          "i källaren", "på ön", "vid älven"]
TIMES = ["varje morgon", "på söndagar", "innan det blir mörkt", "efter jobbet",
         "mitt i natten", "i april", "när det regnar", "under sommarlovet",
         "till allas förvåning", "för första gången", "trots kylan", "utan att säga något",
         "som vanligt", "i all hast"]
MALE_VOICES = ["m1", "m2", "m3", "m4", "m5", "m6", "m7"]
FEMALE_VOICES = ["f1", "f2", "f3", "f4", "f5"]
AGES = ["teens", "twenties", "thirties", "forties", "fifties", "sixties"]


def _sentences(n: int, rng) -> list[str]:
    total = len(SUBJECTS) * len(VERBS) * len(PLACES) * len(TIMES)
    if n > total:
        raise SystemExit(f"--clips {n}: at most {total} distinct sentences can be made")
    out = []
    for i in rng.sample(range(total), n):
        i, t = divmod(i, len(TIMES))
        i, p = divmod(i, len(PLACES))
        s, v = divmod(i, len(VERBS))
        out.append(f"{SUBJECTS[s]} {VERBS[v]} {PLACES[p]} {TIMES[t]}.")
    return out


def _synth(job: tuple) -> int:
    """espeak-ng -> 48 kHz float -> padded/trimmed to 2-6 s -> mp3; returns the sample count."""
    import numpy as np
    import soundfile as sf
    import soxr

    path, text, voice, pitch, speed, gain, extra, seed = job
    wav = subprocess.run(["espeak-ng", "-v", f"sv+{voice}", "-p", str(pitch), "-s", str(speed),
                          "--stdout", text], check=True, capture_output=True).stdout
    x, sr = sf.read(io.BytesIO(wav), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    y = soxr.resample(x, sr, SRC_SR).astype(np.float32)
    rng = np.random.default_rng(seed)
    target = int(min(max(len(y) / SRC_SR + extra, 2.0), 6.0) * SRC_SR)
    if len(y) > target:
        y = y[:target].copy()
        fade = int(0.02 * SRC_SR)
        y[-fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    elif len(y) < target:
        y = np.concatenate([y, np.zeros(target - len(y), np.float32)])
    y = y / max(float(np.abs(y).max()), 1e-6) * gain
    y += rng.normal(0, 10 ** (-66 / 20), len(y)).astype(np.float32)  # a faint noise floor
    sf.write(path, np.clip(y, -1, 1), SRC_SR, format="MP3", compression_level=0.9)
    return len(y)


def _locale_dir(root: Path) -> Path:
    return root / RELEASE / LOCALE


def _complete(root: Path, params: dict) -> bool:
    marker = root / ".complete.json"
    try:
        return json.loads(marker.read_text()) == params
    except (OSError, json.JSONDecodeError):
        return False


def _write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(r) + "\n")


def make_input(workdir: Path, n: int, seed: int = 17) -> Path:
    """The 1x Common Voice layout (cached: reused when its marker matches)."""
    import random
    from concurrent.futures import ProcessPoolExecutor

    root = workdir / f"input-{n}"
    params = {"clips": n, "seed": seed, "version": GEN_VERSION}
    if _complete(root, params):
        print(f"input: reusing {root}")
        return root
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is needed to synthesize the input (apt-get install espeak-ng)")
    shutil.rmtree(root, ignore_errors=True)
    loc = _locale_dir(root)
    (loc / "clips").mkdir(parents=True)
    rng = random.Random(seed)
    n_spk = max(12, n // 10)
    speakers = []
    for i in range(n_spk):
        female = rng.random() < 0.5
        speakers.append({
            "client_id": hashlib.sha512(f"speaker-{seed}-{i}".encode()).hexdigest(),
            "voice": rng.choice(FEMALE_VOICES if female else MALE_VOICES),
            "pitch": rng.randint(25, 75), "speed": rng.randint(135, 185),
            "gain": round(rng.uniform(0.45, 0.85), 3), "age": rng.choice(AGES),
            "gender": "female_feminine" if female else "male_masculine"})
    order = list(range(n_spk))
    rng.shuffle(order)
    n_eval = max(1, n_spk // 10)
    split_of = {}
    for j, s in enumerate(order):
        split_of[s] = "test" if j < n_eval else "validation" if j < 2 * n_eval else "train"
    sentences = _sentences(n, rng)
    jobs, rows = [], []
    for i in range(n):
        spk = rng.randrange(n_spk)
        sp = speakers[spk]
        name = f"common_voice_{LOCALE}_{FIRST_ID + i}.mp3"
        jobs.append((str(loc / "clips" / name), sentences[i], sp["voice"], sp["pitch"],
                     sp["speed"], sp["gain"], rng.uniform(0.0, 1.0), seed * 1_000_003 + i))
        rows.append((split_of[spk], name, sentences[i], sp))
    print(f"input: synthesizing {n} clips with espeak-ng into {root} ...", flush=True)
    t0 = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        lengths = list(pool.map(_synth, jobs, chunksize=8))
    by_split: dict[str, list[list[str]]] = {s: [] for s in SPLIT_FILES}
    for split, name, sentence, sp in rows:
        by_split[split].append([sp["client_id"], name, hashlib.sha256(sentence.encode()).hexdigest(),
                                sentence, "", "2", "0", sp["age"], sp["gender"], "", "", LOCALE, ""])
    for split, fname in SPLIT_FILES.items():
        _write_tsv(loc / fname, HEADER, by_split[split])
    _write_tsv(loc / "clip_durations.tsv", ["clip", "duration[ms]"],
               [[name, str(round(k * 1000 / SRC_SR))] for (_, name, _, _), k in zip(rows, lengths)])
    secs = sum(lengths) / SRC_SR
    print(f"input: {n} clips, {secs / 3600:.3f} h, splits "
          + ", ".join(f"{s} {len(r)}" for s, r in by_split.items())
          + f" ({time.perf_counter() - t0:.0f} s)")
    (root / ".complete.json").write_text(json.dumps(params))
    return root


def make_scaled(workdir: Path, base: Path, n: int, k: int) -> Path:
    """``k`` x the base input: every clip again under ``k - 1`` new names (hard links when the
    file system allows, copies otherwise), same TSV rows (speaker, split, sentence)."""
    root = workdir / f"input-{n}x{k}"
    params = {"base": str(base), "clips": n, "scale": k, "version": GEN_VERSION}
    if _complete(root, params):
        print(f"input x{k}: reusing {root}")
        return root
    shutil.rmtree(root, ignore_errors=True)
    src, loc = _locale_dir(base), _locale_dir(root)
    (loc / "clips").mkdir(parents=True)

    def rename(name: str, c: int) -> str:
        num = int(name.rsplit("_", 1)[1].split(".")[0]) + c * 10 ** len(str(n))
        return f"common_voice_{LOCALE}_{num}.mp3"

    def read(fname):
        with open(src / fname, encoding="utf-8") as f:
            lines = f.read().splitlines()
        return lines[0], [line.split("\t") for line in lines[1:] if line]

    for fname in [*SPLIT_FILES.values(), "clip_durations.tsv"]:
        header, rows = read(fname)
        col = header.split("\t").index("clip" if fname == "clip_durations.tsv" else "path")
        out = []
        for c in range(k):
            for r in rows:
                r2 = list(r)
                r2[col] = rename(r[col], c)
                out.append(r2)
        _write_tsv(loc / fname, header.split("\t"), out)
    for p in sorted((src / "clips").iterdir()):
        for c in range(k):
            dst = loc / "clips" / rename(p.name, c)
            try:
                os.link(p, dst)
            except OSError:
                shutil.copyfile(p, dst)
    (root / ".complete.json").write_text(json.dumps(params))
    print(f"input x{k}: {n * k} clips in {root}")
    return root


def warm_cache(root: Path) -> None:
    """Read every clip once, so that every method starts with the same (hot) page cache."""
    for p in (_locale_dir(root) / "clips").iterdir():
        with open(p, "rb") as f:
            while f.read(1 << 20):
                pass


# ---- measured runs ------------------------------------------------------------------------------

# Started as `python -c WRAPPER result.json cmd...`: runs cmd, reaps every descendant that was
# orphaned on the way (as child subreaper), reports the rusage of all of them.
WRAPPER = r"""
import ctypes, json, os, resource, subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
try:
    subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except Exception:
    subreaper = False
t0 = time.perf_counter()
rc = subprocess.Popen(cmd).wait()
wall = time.perf_counter() - t0
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
with open(out, "w") as f:
    json.dump({"rc": rc, "wall": wall, "user": ru.ru_utime, "sys": ru.ru_stime,
               "maxrss_kib": ru.ru_maxrss, "subreaper": subreaper}, f)
sys.exit(rc)
"""


class TreeRss(threading.Thread):
    """Samples the summed RSS of a process's descendants (psutil) until stopped."""

    def __init__(self, pid: int, every: float = 0.05):
        super().__init__(daemon=True)
        self.pid, self.every, self.peak, self.ok = pid, every, 0, True
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            import psutil
            proc = psutil.Process(self.pid)
        except Exception:
            self.ok = False
            return
        while not self._stop_event.is_set():
            total = 0
            try:
                for c in proc.children(recursive=True):
                    try:
                        total += c.memory_info().rss
                    except psutil.Error:
                        pass
            except psutil.Error:
                break
            self.peak = max(self.peak, total)
            self._stop_event.wait(self.every)

    def stop(self) -> int | None:
        self._stop_event.set()
        self.join()
        return self.peak if self.ok else None


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                "HF_DATASETS_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1",
                "PYTHONDONTWRITEBYTECODE": "1"})
    env.update(extra or {})
    return env


def measure(name: str, cmd: list[str], log: Path, env: dict | None = None) -> dict:
    """Run ``cmd`` under the wrapper; wall, CPU (user+sys of the whole tree), peak RSS."""
    res_file = log.with_suffix(".rusage.json")
    res_file.unlink(missing_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"run: {name} ...", end=" ", flush=True)
    with open(log, "wb") as lf:
        p = subprocess.Popen([sys.executable, "-c", WRAPPER, str(res_file), *cmd],
                             stdout=lf, stderr=subprocess.STDOUT, env=env or child_env())
        sampler = TreeRss(p.pid)
        sampler.start()
        p.wait()
        tree = sampler.stop()
    r = json.loads(res_file.read_text()) if res_file.exists() else {"rc": p.returncode}
    if r.get("rc") != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise SystemExit(f"\n{name} failed (exit {r.get('rc')}); end of {log}:\n{tail}")
    r.update(name=name, cpu=r["user"] + r["sys"], tree_rss_bytes=tree, log=str(log))
    print(f"{r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU")
    return r


def sweaug_cmd(inp: Path, out: Path, workers: int, extra: list[str] = ()) -> list[str]:
    return [sys.executable, "-m", "sweaug.cli", "build", "--sources", "cv", "--cv-dir", str(inp),
            "--out", str(out), "--workers", str(workers), "--no-progress", *extra]


def self_cmd(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


# ---- the two other methods, run as `build_throughput.py --child datasets|bare IN OUT` ---------

def _key(clip: str) -> str:
    return "cv_" + os.path.splitext(clip)[0]  # what sweaug's make_key gives these names


def _member(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    tar.addfile(info, io.BytesIO(data))


# The codec loop both baselines share: 16 kHz mono float -> 16-bit PCM -> FLAC, then the sample's
# two members. Only the decode/resample step differs (torchcodec through `datasets` / soxr).
def _flac16(mono) -> tuple[bytes, int]:
    """16 kHz mono float32 -> (16-bit FLAC bytes, sample count)."""
    import numpy as np
    import soundfile as sf

    pcm = np.clip(np.rint(mono * 32767.0), -32768, 32767).astype(np.int16)
    buf = io.BytesIO()
    sf.write(buf, pcm, 16000, format="FLAC", subtype="PCM_16")
    return buf.getvalue(), int(pcm.size)


def _write_sample(tar: tarfile.TarFile, key: str, flac: bytes, meta: dict) -> None:
    _member(tar, f"{key}.flac", flac)
    _member(tar, f"{key}.json", json.dumps(meta, ensure_ascii=False).encode())


def child_datasets(inp: Path, out: Path) -> None:
    from datasets import Audio, load_dataset

    loc = _locale_dir(inp)
    files = {split: str(loc / fname) for split, fname in SPLIT_FILES.items()}
    dsd = load_dataset("csv", data_files=files, delimiter="\t", quoting=csv.QUOTE_NONE,
                       cache_dir=str(out / ".hf-cache"))
    clips = str(loc / "clips")

    def to_flac(example: dict) -> dict:
        samples = example["audio"].get_all_samples()  # torchcodec AudioDecoder, at 16 kHz
        x = samples.data.numpy()  # (channels, frames) float32
        flac, n = _flac16(x[0] if x.shape[0] == 1 else x.mean(axis=0))
        return {"flac": flac, "num_samples": n}

    (out / "cv").mkdir(parents=True, exist_ok=True)
    for split, ds in dsd.items():
        ds = ds.add_column("audio", [os.path.join(clips, p) for p in ds["path"]])
        ds = ds.cast_column("audio", Audio(sampling_rate=16000))
        ds = ds.map(to_flac, remove_columns=["audio"], num_proc=None)
        with tarfile.open(out / "cv" / f"{split}-000000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
            for row in ds:
                key = _key(row["path"])
                meta = {"key": key, "split": split, "text": row["sentence"],
                        "speaker": row["client_id"], "gender": row["gender"] or "",
                        "num_samples": row["num_samples"], "sample_rate": 16000,
                        "duration": round(row["num_samples"] / 16000, 4)}
                _write_sample(tar, key, row["flac"], meta)


def child_bare(inp: Path, out: Path) -> None:
    import soundfile as sf
    import soxr

    loc = _locale_dir(inp)
    (out / "cv").mkdir(parents=True, exist_ok=True)
    with tarfile.open(out / "cv" / "all-000000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for split, fname in SPLIT_FILES.items():
            with open(loc / fname, encoding="utf-8", newline="") as f:
                for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
                    x, sr = sf.read(loc / "clips" / row["path"], dtype="float32", always_2d=True)
                    mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1)
                    flac, n = _flac16(soxr.resample(mono, sr, 16000, quality="HQ"))
                    key = _key(row["path"])
                    meta = {"key": key, "split": split, "text": row["sentence"],
                            "speaker": row["client_id"], "num_samples": n, "sample_rate": 16000}
                    _write_sample(tar, key, flac, meta)


# ---- checking the outputs -----------------------------------------------------------------------

def read_output(out: Path) -> dict:
    """key -> frames of every sample in ``out/cv/*.tar``; every FLAC checked (16 kHz mono PCM_16)."""
    import soundfile as sf

    frames: dict[str, int] = {}
    bad = []
    for shard in sorted((out / "cv").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar:
                key, _, ext = m.name.partition(".")
                if ext != "flac":
                    continue
                info = sf.info(io.BytesIO(tar.extractfile(m).read()))
                if (info.samplerate, info.channels, info.subtype) != (16000, 1, "PCM_16"):
                    bad.append(f"{key}: {info.samplerate} Hz, {info.channels} ch, {info.subtype}")
                if key in frames:
                    bad.append(f"{key}: twice")
                frames[key] = info.frames
    return {"frames": frames, "bad": bad, "seconds": sum(frames.values()) / 16000}


def sweaug_drops(out: Path) -> dict:
    m = json.loads((out / "manifest.json").read_text())
    drops: dict[str, int] = {}
    for d in m["drops"]:
        drops[d["reason"]] = drops.get(d["reason"], 0) + 1
    return drops


# ---- the report ---------------------------------------------------------------------------------

def _mib(kib_or_bytes: float | None, unit: str = "kib") -> str:
    if kib_or_bytes is None:
        return "-"
    return f"{kib_or_bytes / (1024 if unit == 'kib' else 1024 * 1024):.0f}"


def print_table(rows: list[dict]) -> None:
    head = ["method", "samples", "audio s", "CPU s", "wall s", "audio-s/CPU-s", "audio-s/wall-s",
            "peak RSS MiB (largest proc)", "peak RSS MiB (tree, sampled)"]
    table = [[r["name"], str(r["samples"]), f"{r['audio']:.1f}", f"{r['cpu']:.2f}",
              f"{r['wall']:.2f}", f"{r['audio'] / r['cpu']:.1f}", f"{r['audio'] / r['wall']:.1f}",
              _mib(r["maxrss_kib"]), _mib(r["tree_rss_bytes"], "bytes")] for r in rows]
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for t in table:
        print("  ".join(c.ljust(w) for c, w in zip(t, widths)))


def verdict(label: str, value: float, target: float, higher: bool = True) -> bool:
    ok = value >= target if higher else value <= target
    sign = ">=" if higher else "<="
    print(f"  {label:<58} {value:6.2f}x  (target {sign} {target}x)  {'PASS' if ok else 'FAIL'}")
    return ok


def profile(inp: Path, work: Path, top: int = 25) -> None:
    """cProfile of a 1-worker sweaug build, top ``top`` by cumulative time and by own time."""
    import pstats

    out, prof = work / "out-profile", work / "sweaug-w1.prof"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "cProfile", "-o", str(prof), "-m", "sweaug.cli", "build",
           "--sources", "cv", "--cv-dir", str(inp), "--out", str(out), "--workers", "1",
           "--no-progress"]
    subprocess.run(cmd, check=True, env=child_env(), stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    for key in ("cumulative", "tottime"):
        print(f"\n-- cProfile, sweaug build --workers 1, top {top} by {key} --")
        stats = pstats.Stats(str(prof), stream=sys.stdout)
        stats.strip_dirs().sort_stats(key).print_stats(top)
    shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2000, help="clips in the 1x input")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "sweaug-build-throughput",
                    help="inputs are cached here, outputs written here")
    ap.add_argument("--keep", action="store_true", help="keep the output shards")
    ap.add_argument("--rss-scale", type=int, default=10,
                    help="peak-RSS run on this many times the clips (0: skip)")
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of a 1-worker sweaug build")
    ap.add_argument("--diagnostic", action=argparse.BooleanOptionalAction, default=True,
                    help="also time sweaug --workers 2 --shard-samples 200 (not a target: shows "
                         "how the 2-worker speed-up depends on the partition size)")
    ap.add_argument("--child", nargs=3, metavar=("METHOD", "IN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        method, inp, out = args.child
        {"datasets": child_datasets, "bare": child_bare}[method](Path(inp), Path(out))
        return 0

    t_start = time.perf_counter()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}")
    inp = make_input(work, args.clips)
    warm_cache(inp)
    outs = {"sweaug-w1": work / "out-sweaug-w1", "sweaug-w2": work / "out-sweaug-w2",
            "datasets": work / "out-datasets", "bare": work / "out-bare",
            "sweaug-w2-p200": work / "out-sweaug-w2-p200"}
    for o in outs.values():
        shutil.rmtree(o, ignore_errors=True)
    logs = work / "logs"

    runs = {
        "bare": measure("bare loop (soundfile+soxr)", self_cmd("--child", "bare", str(inp),
                                                              str(outs["bare"])),
                        logs / "bare.log"),
        "sweaug-w1": measure("sweaug --workers 1", sweaug_cmd(inp, outs["sweaug-w1"], 1),
                             logs / "sweaug-w1.log"),
        "sweaug-w2": measure("sweaug --workers 2", sweaug_cmd(inp, outs["sweaug-w2"], 2),
                             logs / "sweaug-w2.log"),
        "datasets": measure("datasets map (num_proc=None)",
                            self_cmd("--child", "datasets", str(inp), str(outs["datasets"])),
                            logs / "datasets.log"),
    }
    if args.diagnostic:
        runs["sweaug-w2-p200"] = measure(
            "sweaug --workers 2 --shard-samples 200",
            sweaug_cmd(inp, outs["sweaug-w2-p200"], 2, ["--shard-samples", "200"]),
            logs / "sweaug-w2-p200.log")
    results = {k: read_output(outs[k]) for k in runs}
    for k, r in runs.items():
        r["samples"] = len(results[k]["frames"])
        r["audio"] = results[k]["seconds"]

    rss_runs = []
    if args.rss_scale and args.rss_scale > 1:
        big = make_scaled(work, inp, args.clips, args.rss_scale)
        warm_cache(big)
        out_big = work / f"out-sweaug-w1-x{args.rss_scale}"
        shutil.rmtree(out_big, ignore_errors=True)
        rb = measure(f"sweaug --workers 1, {args.rss_scale}x input", sweaug_cmd(big, out_big, 1),
                     logs / f"sweaug-w1-x{args.rss_scale}.log")
        rb_out = read_output(out_big)
        rb["samples"], rb["audio"] = len(rb_out["frames"]), rb_out["seconds"]
        rb["drops"] = sweaug_drops(out_big)
        rss_runs.append(rb)
        if not args.keep:
            shutil.rmtree(out_big, ignore_errors=True)

    # ---- the report ----
    print(f"\n== build throughput: {args.clips} clips of 48 kHz mono mp3 (Common Voice 17.0 "
          f"layout) -> 16 kHz mono FLAC WebDataset shards ==")
    print_table([runs[k] for k in ("sweaug-w1", "sweaug-w2", "sweaug-w2-p200", "datasets", "bare")
                 if k in runs] + rss_runs)
    w1, w2, hf, bare = (runs[k] for k in ("sweaug-w1", "sweaug-w2", "datasets", "bare"))
    eff = {k: r["audio"] / r["cpu"] for k, r in runs.items()}
    print("\nratios:")
    ok = [verdict("sweaug(1 worker) / datasets, audio-s per CPU-s", eff["sweaug-w1"] / eff["datasets"],
                  TARGET_VS_DATASETS),
          verdict("sweaug(1 worker) / bare loop, audio-s per CPU-s", eff["sweaug-w1"] / eff["bare"],
                  TARGET_VS_BARE),
          verdict("sweaug 2 workers / 1 worker, audio-s per wall-s",
                  (w2["audio"] / w2["wall"]) / (w1["audio"] / w1["wall"]), TARGET_SCALING)]
    if "sweaug-w2-p200" in runs:
        d = runs["sweaug-w2-p200"]
        print(f"  (diagnostic, no target) sweaug 2 workers --shard-samples 200 / 1 worker, "
              f"audio-s per wall-s: {(d['audio'] / d['wall']) / (w1['audio'] / w1['wall']):.2f}x")
    if rss_runs:
        rb = rss_runs[0]
        print(f"\npeak RSS, sweaug --workers 1 (ru_maxrss): {args.clips} clips "
              f"{_mib(w1['maxrss_kib'])} MiB, {rb['samples']} clips {_mib(rb['maxrss_kib'])} MiB")
        ok.append(verdict(f"peak RSS at {args.rss_scale}x / 1x clips",
                          rb["maxrss_kib"] / w1["maxrss_kib"], RSS_FLAT, higher=False))
        if rb["drops"]:
            print(f"  {args.rss_scale}x input: sweaug dropped {rb['drops']}")

    print("\noutput check:")
    drops = sweaug_drops(outs["sweaug-w1"])
    print(f"  sweaug drops (1x input): {drops or 'none'}")
    ref = results["sweaug-w1"]["frames"]
    consistent = True
    for k in [k for k in runs if k != "sweaug-w1"]:
        other = results[k]["frames"]
        missing, extra = sorted(set(ref) - set(other)), sorted(set(other) - set(ref))
        common = set(ref) & set(other)
        diffs = [abs(ref[c] - other[c]) for c in common]
        same = not missing and not extra
        consistent &= same
        print(f"  {runs[k]['name']:<40} samples {len(other)} vs sweaug {len(ref)}: "
              f"{'same keys' if same else f'{len(missing)} missing, {len(extra)} extra'}; "
              f"frame-count difference max {max(diffs, default=0)}, "
              f"mean {sum(diffs) / max(len(diffs), 1):.1f}")
    for k, r in results.items():
        if r["bad"]:
            consistent = False
            print(f"  {runs[k]['name']}: {len(r['bad'])} bad samples, e.g. {r['bad'][:3]}")
    total_in = sum(1 for _ in (_locale_dir(inp) / "clips").iterdir())
    if len(ref) != total_in:
        print(f"  sweaug wrote {len(ref)} of {total_in} input clips")
    print(f"  outputs {'agree' if consistent else 'DISAGREE'}")

    if args.profile:
        profile(inp, work)
    if not args.keep:
        for o in outs.values():
            shutil.rmtree(o, ignore_errors=True)
    print(f"\ntotal benchmark time {time.perf_counter() - t_start:.0f} s; logs in {logs}")
    return 0 if all(ok) and consistent else 1


if __name__ == "__main__":
    sys.exit(main())
