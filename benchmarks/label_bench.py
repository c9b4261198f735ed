"""``sweaug label`` in numbers, in one run (a script, not a timed test: this machine is noisy).

The teacher is a tiny Whisper (d_model 64, one layer, 6-s window) overfitted on the bundled
sample's CV clips (``sweaug.train.whisper.tiny_teacher``), so it writes transcripts of a real
length (a random model loops to its token budget). On those clips, one process:

1. teacher transcription, clips/s and audio-s per s: batched by duration (the stage's way:
   longest first, ``--batch-size``) vs the baseline, one clip at a time in stream order;
   best of ``--repeats`` passes each, side by side;
2. the whole stage (``label_corpus``: read, transcribe, score, check, write shards), clips/s.

Then what the same work needs for Whisper large-v3 on a GPU, from published throughput (not
measured here: no GPU and no weights on this machine):

* huggingface/open_asr_leaderboard (commit 090df12, ``scripts/data/multilingual.csv`` and
  ``en_shortform.csv``; README: "All evaluations were run using an NVIDIA A100-SXM4-80GB GPU";
  transformers ``generate``, bf16, SDPA, batch 64, clips <= 30 s): large-v3 RTFx 145.51
  short-form English, 110.92 multilingual;
* Vaibhavs10/insanely-fast-whisper README (commit 0108ed75): 150 min of audio in 98 s with
  large-v3, transformers pipeline, fp16, batch 24, Flash Attention 2, A100-80GB (RTF 91.8).

    python benchmarks/label_bench.py [--repeats 3] [--workdir DIR]
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

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
PUBLISHED = [  # (what, audio seconds per wall second)
    ("open_asr_leaderboard, large-v3, transformers bf16 batch 64, A100-80GB, multilingual",
     110.92),
    ("open_asr_leaderboard, large-v3, same, English short-form", 145.51),
    ("insanely-fast-whisper, large-v3, fp16 batch 24 + FlashAttention-2, A100-80GB",
     150 * 60 / 98),
]


def _clips(folder: Path) -> list[tuple]:
    import soundfile as sf

    from sweaug.build.shards import iter_samples

    out = []
    for shard in sorted(folder.glob("*.tar")):
        for _, files in iter_samples(shard):
            x, _ = sf.read(io.BytesIO(files["flac"]), dtype="float32")
            out.append((x, json.loads(files["json"])["text"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="sweaug-label-bench-"))
    corpus = work / "corpus"
    if not (corpus / "manifest.json").exists():
        subprocess.run([sys.executable, "-m", "sweaug.cli", "build", "--sources", "cv",
                        "--cv-dir", str(REPO / "sweaug" / "sample" / "cv"), "--out", str(corpus),
                        "--no-progress"], check=True, capture_output=True,
                       env=dict(os.environ, PYTHONPATH=str(REPO)))
    clips = _clips(corpus / "cv")
    teacher_dir = work / "teacher"
    from sweaug.train.whisper import tiny_teacher

    if not (teacher_dir / "config.json").exists():
        t0 = time.perf_counter()
        tiny_teacher(clips, teacher_dir)
        print(f"tiny teacher trained on {len(clips)} clips in {time.perf_counter() - t0:.0f} s")
    from sweaug.label.checks import Thresholds
    from sweaug.label.stage import label_corpus
    from sweaug.label.teacher import Teacher, resolve_teacher

    spec = resolve_teacher(str(teacher_dir), batch_size=16)
    teacher = Teacher.load(spec)
    audio = [x for x, _ in clips]
    seconds = sum(len(x) for x in audio) / 16000
    teacher.transcribe(audio[:2])  # warm-up

    def batched() -> float:
        t0 = time.perf_counter()
        order = sorted(range(len(audio)), key=lambda i: -len(audio[i]))
        for i in range(0, len(order), spec.batch_size):
            teacher.transcribe([audio[j] for j in order[i:i + spec.batch_size]])
        return time.perf_counter() - t0

    def one_by_one() -> float:
        t0 = time.perf_counter()
        for x in audio:
            teacher.transcribe([x])
        return time.perf_counter() - t0

    best = {"batched": 1e9, "one": 1e9}
    for _ in range(args.repeats):  # interleaved: the machine's noise hits both alike
        best["batched"] = min(best["batched"], batched())
        best["one"] = min(best["one"], one_by_one())
    n = len(audio)
    print(f"\n1. teacher transcription, {n} clips ({seconds:.1f} s of audio), CPU, "
          f"{os.cpu_count()} cores, best of {args.repeats}:")
    print(f"   batched by duration (batch {spec.batch_size}): {n / best['batched']:.1f} clips/s, "
          f"{seconds / best['batched']:.1f} audio-s/s")
    print(f"   one clip at a time (baseline):  {n / best['one']:.1f} clips/s, "
          f"{seconds / best['one']:.1f} audio-s/s")
    print(f"   ratio batched / baseline: {best['one'] / best['batched']:.2f}x")
    out = work / "labelled"
    if out.exists():  # an earlier run's shards would be reused (resume), not measured
        import shutil

        shutil.rmtree(out)
    t0 = time.perf_counter()
    m = label_corpus(corpus / "cv", out, spec, Thresholds(max_wer=0.1))
    wall = time.perf_counter() - t0
    splits = next(iter(m["sources"].values()))["splits"]
    kept = sum(s["samples"] for s in splits.values())
    print(f"\n2. the whole stage (label_corpus, 1 worker, --max-wer 0.1): {n / wall:.1f} clips/s "
          f"({wall:.1f} s with the teacher already loaded; {kept} of {n} kept)")
    print("\n3. Whisper large-v3 on a GPU for 1,000 h of audio, from published throughput "
          "(see the docstring for the sources; not measured here):")
    for what, rtf in PUBLISHED:
        print(f"   {what}: {rtf:.1f}x real time -> {1000 / rtf:.1f} GPU-hours")
    print("   (RTF falls with long transcripts, padding and looping output; sweaug's stage adds "
          "reading, scoring and writing shards, which run on the CPU)")


if __name__ == "__main__":
    main()
