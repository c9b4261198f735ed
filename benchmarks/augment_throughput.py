"""Augmentation throughput, in one run (a script, not a timed test: this machine is noisy).

1. x real time per core of each shipped recipe (recipes/augment/*.yaml): the Augmenter on
   ~5 s clips of Swedish speech (the bundled sample's clips, concatenated), CPU time of this
   process only (one thread).
2. samples/s of the on-the-fly training input pipeline — read shard -> decode FLAC -> augment
   (default recipe) -> log-mel features -> token ids — through a torch DataLoader with 2
   workers, two ways:
     naive:  WhisperFeatureExtractor on the clip padded to 30 s (what a notebook does);
     sweaug: sweaug.train.data.ShardStream with sweaug.train.features.LogMel;
   plus the per-stage cost of one sample on one core, and a check that both give the same
   features. Target: >= 100 samples/s for sweaug.

    python benchmarks/augment_throughput.py [--clips 200] [--workdir DIR]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("OMP_NUM_THREADS", "1")


def clips_5s(n: int) -> list[np.ndarray]:
    """n clips of 4.5-5.5 s: the bundled CV sample's speech, concatenated and resampled."""
    import soundfile as sf
    import soxr

    files = sorted((REPO / "sweaug" / "sample" / "cv").rglob("*.mp3"))
    pool = []
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        pool.append(soxr.resample(x, sr, 16000).astype(np.float32))
    rng = np.random.default_rng(0)
    out = []
    while len(out) < n:
        target, parts = rng.uniform(4.5, 5.5) * 16000, []
        while sum(p.size for p in parts) < target:
            parts.append(pool[rng.integers(len(pool))])
        out.append(np.concatenate(parts)[: int(target)])
    return out


def write_shards(clips: list[np.ndarray], folder: Path, per_shard: int = 50) -> list[Path]:
    from sweaug.build.audio import encode_flac
    from sweaug.build.shards import ShardWriter, sample_json

    folder.mkdir(parents=True, exist_ok=True)
    w = ShardWriter(lambda i: folder / f"train-{i:06d}.tar", per_shard)
    for i, x in enumerate(clips):
        key = f"bench_{i:05d}"
        w.write(key, [("flac", encode_flac(x)), ("json", sample_json(
            {"key": key, "text": f"Det här är mening nummer {i} i testet, med å, ä och ö."}))])
    return [s.path for s in w.close()]


def recipe_speed(clips, seconds_each) -> dict[str, float]:
    import torch

    from sweaug.augment import Augmenter, load_recipe

    torch.set_num_threads(1)
    out = {}
    for path in sorted((REPO / "recipes" / "augment").glob("*.yaml")):
        aug = Augmenter(load_recipe(path), seed=1)
        aug(clips[0], 16000, "warm", 0)
        t0 = time.process_time()
        for i, x in enumerate(clips):
            aug(x, 16000, f"k{i}", 0)
        out[path.stem] = seconds_each / (time.process_time() - t0)
    return out


class NaiveStream:
    """What a notebook does: the same stream, features from WhisperFeatureExtractor."""

    def __init__(self, shards, tokenizer, fe, augmenter):
        self.shards, self.tok, self.fe, self.aug = shards, tokenizer, fe, augmenter

    def make(self):
        import torch.utils.data as tud

        outer = self

        class DS(tud.IterableDataset):
            def __iter__(self):
                from sweaug.build.shards import iter_samples
                from sweaug.train.data import decode_flac

                info = tud.get_worker_info()
                for shard in outer.shards[info.id::info.num_workers] if info else outer.shards:
                    for key, files in iter_samples(Path(shard)):
                        x, _ = outer.aug(decode_flac(files["flac"]), 16000, key, 0)
                        feats = outer.fe(x, sampling_rate=16000, return_tensors="np").input_features[0]
                        yield {"key": key, "input_features": feats,
                               "labels": outer.tok(json.loads(files["json"])["text"]).input_ids}
        return DS()


def _init_worker(_):
    import torch
    torch.set_num_threads(1)


def loader_rate(dataset, n_expected: int) -> float:
    import torch.utils.data as tud

    dl = tud.DataLoader(dataset, batch_size=None, num_workers=2, worker_init_fn=_init_worker,
                        prefetch_factor=4, persistent_workers=False)
    t0, n = time.perf_counter(), 0
    for _ in dl:
        n += 1
    assert n == n_expected, (n, n_expected)
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--workdir", type=Path)
    args = ap.parse_args()
    import torch
    from transformers import WhisperFeatureExtractor

    from sweaug.augment import Augmenter, load_recipe
    from sweaug.train.data import ShardStream, decode_flac
    from sweaug.train.features import LogMel
    from sweaug.train.whisper import offline_tokenizer

    work = args.workdir or Path(tempfile.mkdtemp(prefix="sweaug-augbench-"))
    clips = clips_5s(args.clips)
    seconds = sum(c.size for c in clips) / 16000
    print(f"{len(clips)} clips, {seconds / len(clips):.2f} s each on average; {os.cpu_count()} CPUs")

    print("\n1. recipes, x real time per core (CPU time, 1 thread)")
    for name, rt in recipe_speed(clips[:60], sum(c.size for c in clips[:60]) / 16000).items():
        print(f"   {name:<10} {rt:7.1f}x")

    shards = [str(p) for p in write_shards(clips, work / "shards")]
    tok = offline_tokenizer()
    tok.set_prefix_tokens(language="swedish", task="transcribe")
    fe = WhisperFeatureExtractor()
    aug = Augmenter(load_recipe(REPO / "recipes" / "augment" / "default.yaml"), seed=1)

    print("\n2. one sample on one core (median of 30, ms)")
    torch.set_num_threads(1)
    from sweaug.build.shards import iter_samples
    first = next(iter_samples(Path(shards[0])))[1]
    lm = LogMel(fe)
    stages = {"decode FLAC": lambda: decode_flac(first["flac"]),
              "augment (default chain)": None,
              "WhisperFeatureExtractor (30 s pad)": lambda: fe(clips[0], sampling_rate=16000,
                                                               return_tensors="np"),
              "LogMel (sweaug)": lambda: lm(clips[0]),
              "tokenize": lambda: tok("Det här är mening nummer 1 i testet.").input_ids}
    for name, f in stages.items():
        ts = []
        for i in range(30):
            t0 = time.perf_counter()
            if f is None:
                aug(clips[i], 16000, f"s{i}", 0)
            else:
                f()
            ts.append(time.perf_counter() - t0)
        print(f"   {name:<36} {1000 * float(np.median(ts)):6.2f}")
    same = all(np.array_equal(lm(c), fe(c, sampling_rate=16000, return_tensors="np")
                              .input_features[0]) for c in clips[:20])
    print(f"   LogMel == WhisperFeatureExtractor on 20 clips: {same}")

    print("\n3. training input pipeline, DataLoader with 2 workers (samples/s)")
    naive = loader_rate(NaiveStream(shards, tok, fe, aug).make(), len(clips))
    fast = loader_rate(ShardStream(shards, tok, LogMel(fe), aug, epoch=0), len(clips))
    noaug = loader_rate(ShardStream(shards, tok, LogMel(fe), None, epoch=0), len(clips))
    print(f"   naive (WhisperFeatureExtractor)     {naive:7.1f}")
    print(f"   sweaug (ShardStream + LogMel)       {fast:7.1f}   {fast / naive:.2f}x naive   "
          f"target >= 100: {'PASS' if fast >= 100 else 'FAIL'}")
    print(f"   sweaug without augmentation         {noaug:7.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
