"""What a resume costs before the first trained step: seeking the stream (issue #15) against
replaying it (transformers' default), side by side in one run, on the same samples.

A training run resumed at step k has consumed ``k x accumulation x batch`` samples per rank.
transformers' default resume fast-forwards the DataLoader through all of them — each read,
decoded, augmented and turned into log-mel, then thrown away. ``MixStream`` can seek instead:
its order is a pure function of (seed, slot, position), so the resumed stream skips the first
P items as references (tar headers only) and prepares only what it yields.

For each position P (``--positions``) this measures, in this process (one slot, no workers):

* ``seek``: ``MixStream(..., start={0: {"position": P}})`` until its first sample;
* ``replay``: a fresh ``MixStream`` through P items (every one prepared) and the next sample —
  what the replay costs;

and checks that both give the same sample (labels, log-mel, stream position): exit 1 if not.
The stream is the one training builds: the bundled sample's ``cv/train`` (built here unless
``--corpus`` is given), whisper's tokenizer and 30 s log-mel, the default on-the-fly
augmentation, a shuffle buffer of 500. Positions beyond the set's size go into later passes.

    python benchmarks/resume_seek.py                       # P = 500, 5000 (about a minute)
    python benchmarks/resume_seek.py --positions 3000 --out runs/resume-seek

Read ``seek_percent_of_replay`` (the goal: under 1 %).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DEFAULT_AUGMENT = REPO / "sweaug" / "recipes" / "augment" / "default.yaml"


def build_sample(out: Path) -> Path:
    """The bundled sample's CV part, built as ``sweaug demo`` builds it."""
    from sweaug.build.pipeline import BuildConfig, build
    from sweaug.demo import demo_cv
    from sweaug.sources import SourceOptions

    corpus = out / "corpus"
    if not (corpus / "manifest.json").exists():
        build(BuildConfig(out=corpus, workers=2, sources={
            "cv": SourceOptions(path=demo_cv(), cache_dir=out / "cache")}))
    return corpus


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--positions", default="500,5000",
                    help="comma-separated stream positions to resume at")
    ap.add_argument("--corpus", type=Path, help="a built corpus with cv/train")
    ap.add_argument("--augment", default=str(DEFAULT_AUGMENT),
                    help="on-the-fly augmentation recipe, or 'none'")
    ap.add_argument("--shuffle-buffer", type=int, default=500)
    ap.add_argument("--out", type=Path, help="folder for the corpus and resume_seek.json")
    a = ap.parse_args(argv)
    positions = [int(x) for x in a.positions.split(",") if x.strip()]
    if not positions or min(positions) < 1:
        ap.error("--positions must be positive integers")

    import torch
    from transformers import WhisperFeatureExtractor

    from sweaug.files import atomic_write_bytes
    from sweaug.train.features import LogMel
    from sweaug.train.mix import DROP_REASONS, MixStream
    from sweaug.train.whisper import offline_tokenizer

    torch.set_num_threads(1)
    out = (a.out or Path(tempfile.mkdtemp(prefix="sweaug-resume-seek-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    corpus = a.corpus.resolve() if a.corpus else build_sample(out)
    shards = sorted(str(p) for p in (corpus / "cv").glob("train-*.tar"))
    if not shards:
        print(f"resume_seek: no cv/train-*.tar in {corpus}", file=sys.stderr)
        return 2
    tok = offline_tokenizer(out / "tokenizer")
    tok.set_prefix_tokens(language="swedish", task="transcribe")
    fe = WhisperFeatureExtractor(chunk_length=30)
    augmenter = None
    if a.augment != "none":
        from sweaug.augment import Augmenter, load_recipe
        augmenter = Augmenter(load_recipe(Path(a.augment)), 42)

    def stream(start=None):
        return MixStream([(shards, 1.0)], tok, LogMel(fe), 42, augmenter, rank=0, world_size=1,
                         shuffle_buffer=a.shuffle_buffer, max_audio_samples=fe.n_samples,
                         max_label_tokens=448, start=start)

    next(iter(stream()))  # warm-up (the augmenter's noise cache, imports): timed by neither
    rows, ok = [], True
    for p in positions:
        t0 = time.perf_counter()
        it = iter(stream())
        prepared = 0
        while True:  # the replay: every item up to P prepared, then the next sample
            s = next(it)
            prepared += 1
            if s["stream"][1] > p:
                break
        replay = time.perf_counter() - t0
        t0 = time.perf_counter()
        # the state a checkpoint at P records: the position and the drops before it
        last = s["stream"]
        before = dict(zip(DROP_REASONS, last[2:]))
        got = next(iter(stream({0: {"position": last[1] - 1, "dropped": before}})))
        seek = time.perf_counter() - t0
        same = (got["labels"] == s["labels"] and got["stream"] == s["stream"]
                and torch.equal(got["input_features"], s["input_features"]))
        ok &= same
        row = {"position": last[1] - 1, "samples_replayed": prepared - 1,
               "dropped_before": before, "replay_seconds": round(replay, 3),
               "seek_seconds": round(seek, 4),
               "seek_percent_of_replay": round(100 * seek / replay, 3),
               "replay_samples_per_second": round(prepared / replay, 1),
               "goal_under_1_percent": seek < 0.01 * replay, "same_sample": same}
        rows.append(row)
        print(f"P={row['position']}: replay {replay:.2f} s ({row['replay_samples_per_second']} "
              f"samples/s), seek {seek:.4f} s = {row['seek_percent_of_replay']} % of the "
              f"replay; same sample: {same}", flush=True)
    report = {"format": "sweaug-resume-seek/1", "corpus": str(corpus), "shards": len(shards),
              "augment": a.augment, "shuffle_buffer": a.shuffle_buffer, "results": rows,
              "ok": ok}
    text = json.dumps(report)
    atomic_write_bytes(out / "resume_seek.json", (text + "\n").encode())
    print(text, flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
