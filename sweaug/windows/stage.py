"""``sweaug windows``: one job per input shard (jobs.py: byte-identical output for any
``--workers``, a killed run resumes), window shards ``<out>/<split>-NNNNNN.tar`` and a manifest
with counts and hours.

A job reads its shard's samples, trims each clip with the energy VAD (vad.py), drops what cannot
be a window part — counted and logged by key: ``corrupt_audio``, ``no_text``, ``silent``,
``over_window`` (longer than ``--seconds`` after trimming) — plans its windows (plan.py) and
writes each as ``<key>.flac`` (16 kHz, 16-bit) + ``<key>.json``::

    {"key", "source", "split", "language", "keys": [source keys], "speakers",
     "segments": [{"key", "start", "end", "text", "speaker", "trim": [lead s, tail s]}],
     "text": complete segments' text, "target": the training target (plan.target),
     "timestamps", "prev_text", "no_speech", "duration", "num_samples", "speech_seconds", ...}

Splits never mix: a job holds one input shard, of one split.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..build.jobs import ShardJob, check_shard_limits
from ..records import ConfigError, SourceError
from .plan import SPLIT_IDS, Settings

log = logging.getLogger("sweaug.windows")
FORMAT = "sweaug-windows/1"
DROP_REASONS = ("corrupt_audio", "no_text", "silent", "over_window")


@dataclass(frozen=True)
class WindowsJob(ShardJob):
    shard: str
    sha256: str
    samples: int
    split: str
    index: int
    source: str  # the input's name (keys are <source>_<split>_w<shard>_<n>)
    settings: Settings
    seed: int
    no_speech_files: tuple[str, ...]
    no_speech_sha256: str
    shard_samples: int
    shard_bytes: int
    version: str
    group: str = ""

    def input_hash(self) -> str:
        return hashlib.sha256(json.dumps(
            [self.sha256, self.settings.as_dict(), self.seed, self.no_speech_sha256,
             self.shard_samples, self.shard_bytes, self.version, self.source]).encode()
        ).hexdigest()

    def run(self, state: Path) -> dict:
        return _run(self, state)


def _key_part(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "_", name).strip("_") or "x"


def _read(job: WindowsJob, drops: list) -> tuple[list, dict, dict]:
    """(Utt list, index -> trimmed int16 audio, index -> meta) of the job's usable samples."""
    import numpy as np
    import soundfile as sf

    from ..build.shards import ShardReadError, iter_samples
    from .plan import Utt, q
    from .vad import speech_bounds

    utts, audio, metas = [], {}, {}
    limit = q(job.settings.seconds)
    for n, (key, files) in enumerate(iter_samples(Path(job.shard))):
        try:
            meta = json.loads(files["json"])
            if not isinstance(meta, dict):
                raise ValueError(f"a JSON {type(meta).__name__}, not an object")
        except (KeyError, ValueError) as e:  # the shard's sha256 matched: it was built so
            raise ShardReadError(f"{job.shard}: sample {key!r} has no readable json member "
                                 f"({type(e).__name__}: {e}): rebuild the shard") from None

        def drop(reason: str, detail: str) -> None:
            log.warning("%s (%s): not in any window: %s: %s", key, job.shard, reason, detail)
            drops.append({"source": meta.get("source", job.source), "split": job.split,
                          "item": key, "reason": reason, "detail": detail})

        text = str(meta.get("text") or "").strip()
        if not text:
            drop("no_text", "the sample's json has no text")
            continue
        try:
            x, sr = sf.read(io.BytesIO(files.get("flac", b"")), dtype="int16", always_2d=True)
            if sr != 16000 or x.shape[1] != 1:
                raise ValueError(f"{sr} Hz, {x.shape[1]} channel(s): expected 16 kHz mono")
        except Exception as e:  # libsndfile raises several types for undecodable bytes
            drop("corrupt_audio", f"{type(e).__name__}: {str(e).splitlines()[0][:160]}")
            continue
        x = x[:, 0]
        bounds = speech_bounds(x.astype(np.float32) / 32768.0)
        if bounds is None:
            drop("silent", "no frame above -60 dBFS")
            continue
        a, b = bounds
        if b - a > limit:
            drop("over_window", f"{(b - a) / 16000:.2f} s of speech after trimming, longer than "
                                f"the {job.settings.seconds:g} s window")
            continue
        utts.append(Utt(n, key, str(meta.get("original_key") or key),
                        str(meta.get("speaker") or ""), b - a, text))
        audio[n] = np.ascontiguousarray(x[a:b])
        metas[n] = {"trim": [round(a / 16000, 7), round((len(x) - b) / 16000, 7)],  # exact
                    "language": meta.get("language", ""), "source": meta.get("source", "")}
    return utts, audio, metas


def _run(job: WindowsJob, state: Path) -> dict:
    import numpy as np

    from ..build.audio import encode_pcm16
    from ..build.jobs import clear_staging, staged, staging_name, write_record
    from ..build.shards import ShardWriter, sample_json
    from . import nospeech
    from .plan import plan_windows, segments, target

    clear_staging(state, job)
    drops: list = []
    utts, audio, metas = _read(job, drops)
    by_index = {u.index: u for u in utts}
    rng = np.random.default_rng([job.seed, SPLIT_IDS[job.split], job.index])
    windows = plan_windows(utts, job.settings, rng, len(job.no_speech_files))
    writer = ShardWriter(lambda j: staging_name(state, job, j), job.shard_samples, job.shard_bytes)
    stats = dict.fromkeys(("windows", "no_speech", "timestamped", "prompted", "straddling",
                           "utterances", "transitions", "same_speaker"), 0)
    seconds = speech = trimmed = 0.0
    cache: dict = {}
    prefix = f"{_key_part(job.source)}_{job.split}_w{job.index:05d}"
    try:
        for n, w in enumerate(windows):
            key = f"{prefix}_{n:05d}"
            if w.no_speech is not None:
                x = nospeech.render(w.no_speech, w.samples, list(job.no_speech_files), cache)
                pcm = np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)
                segs, spoken = [], 0
                params = dict(w.no_speech, file=(Path(job.no_speech_files[w.no_speech["source"]])
                                                 .name if w.no_speech["kind"] == "noise" else ""))
            else:
                pcm = np.zeros(w.samples, dtype=np.int16)
                for p in w.placed:
                    clip = audio[p.utt][: w.samples - p.start]
                    pcm[p.start: p.start + len(clip)] = clip
                segs = segments(w, by_index)
                for s, p in zip(segs, w.placed):
                    s["trim"] = metas[p.utt]["trim"]
                    trimmed += sum(s["trim"]) if not p.straddles else 0.0
                spoken = sum(by_index[p.utt].samples for p in w.placed if not p.straddles)
                params = None
            complete = [s for s in segs if not s.get("straddles")]
            first = metas[w.placed[0].utt] if w.placed else {}
            meta = {
                "key": key, "source": first.get("source", job.source), "split": job.split,
                "language": first.get("language", ""),
                "keys": [s["key"] for s in complete],
                "speakers": sorted({s["speaker"] for s in complete}),
                "segments": segs, "text": " ".join(s["text"] for s in complete),
                "target": target(segs, w.timestamps), "timestamps": w.timestamps,
                "prev_text": w.prev_text, "no_speech": w.no_speech is not None,
                "duration": round(w.samples / 16000, 4), "num_samples": int(w.samples),
                "sample_rate": 16000, "speech_seconds": round(spoken / 16000, 4),
                "window": {"seed": job.seed, "input_shard": job.index, "index": n,
                           "no_speech": params},
            }
            writer.write(key, [("flac", encode_pcm16(pcm)), ("json", sample_json(meta))])
            seconds += w.samples / 16000
            speech += spoken / 16000
            stats["windows"] += 1
            stats["no_speech"] += w.no_speech is not None
            stats["timestamped"] += w.timestamps
            stats["prompted"] += bool(w.prev_text)
            stats["straddling"] += bool(w.placed and w.placed[-1].straddles)
            stats["utterances"] += len(complete)
            stats["transitions"] += w.transitions
            stats["same_speaker"] += w.same_speaker
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    result = {"job": job.name, "input": job.input_hash(),
              "shards": staged(shards),
              "samples": sum(s.samples for s in shards), "seconds": round(seconds, 4),
              "speech_seconds": round(speech, 4), "trimmed_seconds": round(trimmed, 4),
              "inputs": len(utts) + len(drops), **stats, "drops": drops}
    write_record(state, job, result)
    return result


def windows_corpus(folder: Path, out: Path, settings: Settings, seed: int,
                   splits: tuple[str, ...] | None = None, workers: int = 1,
                   no_speech_dir: Path | None = None, shard_samples: int = 1000,
                   shard_bytes: int = 512 << 20,
                   progress: Callable[[float, float], None] | None = None) -> dict:
    """Write the windows of ``folder`` (a build's source folder or an augmented or windows
    folder) into ``out`` with its own manifest; one run at a time writes it."""
    from .. import __version__
    from ..augment.offline import checked_shards, choose_splits, find_input
    from ..build.jobs import derived_manifest, run_jobs, split_results, write_manifest
    from ..build.storage import OutputLock, refuse_overlap
    from ..augment.recipe import SAMPLE_DIR
    from ..files import sha256_file
    from .nospeech import no_speech_files

    check_shard_limits(shard_samples, shard_bytes)
    folder, out = Path(folder), Path(out)
    manifest, mpath, source, in_splits = find_input(folder)
    if manifest.get("format") == FORMAT:
        raise SourceError(f"{folder} already holds windows ({FORMAT}): give its input folder")
    if manifest["sources"][source].get("unlabelled"):  # every sample would be a no_text drop
        from ..build.manifest import unlabelled_message
        raise SourceError(unlabelled_message(folder))
    refuse_overlap(out, [("folder", folder), ("manifest", mpath)])
    chosen = choose_splits(folder, in_splits, splits)
    files, shared = {s: [] for s in chosen}, False
    ns_folder = None
    if settings.no_speech_fraction > 0:
        ns_folder = Path(no_speech_dir) if no_speech_dir else SAMPLE_DIR / "noise"
        all_files, shared = no_speech_files(ns_folder)
        files = {s: all_files[s] for s in chosen}
    elif no_speech_dir:
        raise ConfigError("--no-speech-dir without --no-speech-fraction: say which share of the "
                          "windows should be no-speech (e.g. --no-speech-fraction 0.1)")

    def files_hash(paths: list[str]) -> str:
        return hashlib.sha256(json.dumps([[Path(p).name, sha256_file(Path(p))]
                                          for p in paths]).encode()).hexdigest()

    hashes = {s: files_hash(fs) for s, fs in files.items()}
    jobs = [WindowsJob(str(shard), s["sha256"], s["samples"], split, i, source, settings,
                       int(seed), tuple(files[split]), hashes[split], shard_samples, shard_bytes,
                       __version__)
            for split, i, shard, s in checked_shards(mpath, in_splits, chosen, "window")]
    with OutputLock(out):
        results, _, index = run_jobs(out, jobs, workers, progress,
                                     total=sum(j.weight for j in jobs), groups={""})
        drops, out_splits = [], {}
        for split in chosen:
            rs, counts, split_drops = split_results(results, jobs, split)
            drops += split_drops
            tot = {k: sum(r[k] for r in rs) for k in (
                "samples", "seconds", "speech_seconds", "trimmed_seconds", "inputs", "windows",
                "no_speech", "timestamped", "prompted", "straddling", "utterances",
                "transitions", "same_speaker")}
            speech_windows = tot["windows"] - tot["no_speech"]
            out_splits[split] = {
                "samples": tot["samples"], "hours": round(tot["seconds"] / 3600, 4),
                "speech_hours": round(tot["speech_seconds"] / 3600, 4),
                "speakers": in_splits[split].get("speakers", 0),
                # transcribed speech over the encoder input (speech windows x the window)
                "speech_share": round(tot["speech_seconds"] / (speech_windows * settings.seconds),
                                      4) if speech_windows else 0.0,
                "input_samples": tot["inputs"], "utterances": tot["utterances"],
                "no_speech": tot["no_speech"], "timestamped": tot["timestamped"],
                "prompted": tot["prompted"], "straddling": tot["straddling"],
                "same_speaker_share": round(tot["same_speaker"] / tot["transitions"], 4)
                if tot["transitions"] else 0.0,
                "trimmed_hours": round(tot["trimmed_seconds"] / 3600, 4),
                "drops": counts, "shards": index.get(split, []),
            }
        result = derived_manifest(
            FORMAT, folder, out, mpath, manifest, source,
            f"in {settings.seconds:g}-s windows (seed {seed})", out_splits, drops,
            windows={**settings.as_dict(), "seed": int(seed),
                     "no_speech": {"folder": str(ns_folder) if ns_folder else "",
                                   "files": {s: [Path(p).name for p in fs]
                                             for s, fs in files.items()},
                                   "shared_across_splits": shared}})
        write_manifest(out, result)
    return result


def format_summary(manifest: dict) -> str:
    """Per split: windows, no-speech windows, speech share, timestamped/prompted/straddling."""
    lines = []
    for name, src in manifest["sources"].items():
        for split, s in src["splits"].items():
            lines.append(f"{name}/{split}: {s['samples']} windows ({s['no_speech']} no-speech) "
                         f"from {s['utterances']} of {s['input_samples']} utterances; speech "
                         f"share {100 * s['speech_share']:.1f} %; timestamped "
                         f"{s['timestamped']}, prompted {s['prompted']}, straddling "
                         f"{s['straddling']}; same speaker {100 * s['same_speaker_share']:.0f} % "
                         f"of transitions")
    return "\n".join(lines)
