"""``sweaug windows`` in numbers, in one run (a script, not a timed test: this machine is noisy).

1. Speech share of the encoder input — transcribed speech seconds over the seconds the encoder
   sees (30 s per example) — single clips padded to 30 s vs windows:
   a. on the bundled CV-layout sample (``sweaug/sample/cv``) and on the demo corpus
      (``sweaug/sample/demo``, 1,360 CV-layout clips), built and windowed through the real stage;
   b. on Common Voice sv-SE's clip lengths: a real ``clip_durations.tsv`` of a CV release given
      with ``--clip-durations`` (CV ships one per language since 13.0), else a log-normal model
      whose mean is CV 17.0 sv-SE's published mean clip length, 4.008 s (avgDurationSecs in
      common-voice/cv-dataset ``datasets/cv-corpus-17.0-2024-03-15.json``: 40,770 validated
      clips, 163,388 s) and whose spread (sigma 0.3) is an assumption: stated in the output.
      Planned with the stage's own planner (plan.py) — lengths only, no audio, untrimmed: a
      real clip also loses its leading/trailing silence to the VAD first.
   Goal: >= 85 % for windows vs ~17 % padded.
2. The windows stage's throughput, audio-seconds of input per CPU-second, vs the bare codec loop
   over the same shards (decode each clip's FLAC, encode it again as 16-bit FLAC: the least any
   stage that rewrites the audio does), both in this process, one worker. Goal: >= 0.7x.

    python benchmarks/windows_bench.py [--clip-durations clip_durations.tsv] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")
CV17_SV_MEAN = 4.008  # s, CV 17.0 sv-SE avgDurationSecs (see the docstring)


def build(cv_dir: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "sweaug.cli", "build", "--sources", "cv", "--cv-dir",
                    str(cv_dir), "--out", str(out), "--no-progress", "--workers", "1"],
                   check=True, capture_output=True, cwd=REPO)
    return out


def padded_share(manifest: dict, seconds: float = 30.0) -> float:
    s = manifest["sources"]["cv"]["splits"]["train"]
    return s["hours"] * 3600 / (s["samples"] * seconds)


def planned_share(durations: np.ndarray, seconds: float = 30.0, seed: int = 13) -> float:
    from sweaug.windows.plan import Settings, Utt, plan_windows

    rng = np.random.default_rng(seed)
    speakers = rng.integers(0, max(1, len(durations) // 20), len(durations))
    utts = [Utt(i, f"u{i}", f"u{i}", f"s{speakers[i]}", int(d * 16000), "x")
            for i, d in enumerate(durations) if d * 16000 <= seconds * 16000]
    total, windows = 0.0, 0
    for start in range(0, len(utts), 1000):  # like the stage: one job per 1,000-sample shard
        part = utts[start:start + 1000]
        ws = plan_windows(part, Settings(seconds=seconds), np.random.default_rng([seed, start]))
        windows += len(ws)
        total += sum(part[p.utt - start].samples for w in ws for p in w.placed
                     if not p.straddles) / 16000
    return total / (windows * seconds)


def bare_codec(folder: Path) -> tuple[float, float]:
    """(audio s, CPU s) of decoding and re-encoding every clip of a built source folder."""
    import soundfile as sf

    from sweaug.build.audio import encode_pcm16
    from sweaug.build.shards import iter_samples

    m = json.loads((folder.parent / "manifest.json").read_text())
    audio, t0 = 0.0, time.process_time()
    for split in m["sources"][folder.name]["splits"].values():
        for sh in split["shards"]:
            for _, files in iter_samples(folder.parent / sh["path"]):
                x, _ = sf.read(io.BytesIO(files["flac"]), dtype="int16")
                encode_pcm16(x)
                audio += len(x) / 16000
    return audio, time.process_time() - t0


def stage(folder: Path, out: Path) -> tuple[float, float, dict]:
    from sweaug.windows.plan import Settings
    from sweaug.windows.stage import windows_corpus

    m = json.loads((folder.parent / "manifest.json").read_text())
    audio = sum(s["hours"] for s in m["sources"][folder.name]["splits"].values()) * 3600
    t0 = time.process_time()
    wm = windows_corpus(folder, out, Settings(), 13, workers=1)
    return audio, time.process_time() - t0, wm


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clip-durations", type=Path,
                    help="a CV release's clip_durations.tsv (clip, duration[ms])")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sweaug-windows-bench-"))
    report = {"machine": {"cpus": os.cpu_count()}}

    print("1a. speech share of the encoder input (30-s windows), through the stage:")
    demo = None
    for name, cv in (("bundled cv sample", REPO / "sweaug" / "sample" / "cv"),
                     ("demo corpus", REPO / "sweaug" / "sample" / "demo")):
        corpus = build(cv, work / name.replace(" ", "-") / "corpus")
        _, _, wm = stage(corpus / "cv", work / name.replace(" ", "-") / "win")
        s = wm["sources"]["win"]["splits"]["train"]
        padded = padded_share(json.loads((corpus / "manifest.json").read_text()))
        print(f"   {name}: padded clips {100 * padded:.1f} %, windows {100 * s['speech_share']:.1f}"
              f" % ({s['samples']} windows from {s['utterances']} clips; VAD trimmed "
              f"{s['trimmed_hours'] * 3600:.0f} s) -> {s['speech_share'] / padded:.1f}x")
        report[name] = {"padded": padded, "windows": s["speech_share"]}
        demo = corpus

    if args.clip_durations:
        import csv

        with open(args.clip_durations, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        col = next(c for c in rows[0] if c.startswith("duration"))
        durations = np.array([float(r[col]) / 1000 for r in rows])
        source = f"{args.clip_durations} ({len(durations)} clips)"
    else:
        sigma = 0.3
        mu = np.log(CV17_SV_MEAN) - sigma ** 2 / 2
        durations = np.random.default_rng(0).lognormal(mu, sigma, 40_770)
        source = (f"log-normal model: mean {CV17_SV_MEAN} s (CV 17.0 sv-SE published mean), "
                  f"sigma {sigma} (assumed), 40,770 clips")
    padded = float(durations[durations <= 30].mean() / 30)
    win = planned_share(durations)
    print(f"1b. CV sv-SE clip lengths [{source}]: padded {100 * padded:.1f} %, windows "
          f"{100 * win:.1f} % -> {win / padded:.1f}x")
    report["cv_sv_lengths"] = {"source": source, "padded": padded, "windows": win}

    print("2. windows stage vs the bare codec loop on the demo corpus (audio s / CPU s, "
          f"best of {args.repeats}, interleaved):")
    bare, win_rates = [], []
    for r in range(args.repeats):
        a, c = bare_codec(demo / "cv")
        bare.append(a / c)
        a, c, _ = stage(demo / "cv", work / f"stage-{r}")
        win_rates.append(a / c)
    b, w = max(bare), max(win_rates)
    print(f"   bare codec loop {b:.0f} audio-s/CPU-s, windows stage {w:.0f} -> {w / b:.2f}x "
          f"(runs: bare {', '.join(f'{x:.0f}' for x in bare)}; windows "
          f"{', '.join(f'{x:.0f}' for x in win_rates)})")
    report["stage_vs_bare"] = {"bare": bare, "windows": win_rates, "ratio": w / b}
    (work / "windows_bench.json").write_text(json.dumps(report, indent=1))
    print(f"wrote {work / 'windows_bench.json'}")


if __name__ == "__main__":
    main()
