"""Weighted, streamed mixing of shard sets for training.

Each shard set is an endless stream: pass after pass over its shards, in an order drawn from
(seed, set, pass); a sample is prepared by exactly one (rank, DataLoader worker) — the n-th
sample of a pass goes to slot n mod slots — so workers see disjoint samples whatever the shard
counts (no duplicated samples, no worker without data). At each step a set is drawn with
probability proportional to its weight from a generator seeded by (seed, slot). On-the-fly
augmentation uses the pass number as its epoch: every pass a different, reproducible draw.
Nothing but the sample being prepared is held in memory.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset


class MixStream(IterableDataset):
    def __init__(self, sets: list[tuple[list[str | Path], float]], tokenizer, features, seed: int,
                 augmenter=None, rank: int = 0, world_size: int = 1, max_label_length: int = 448,
                 text_field: str = "text"):
        if not sets or any(w <= 0 for _, w in sets):
            raise ValueError("a mix needs shard sets with positive weights")
        self.sets = [([str(s) for s in shards], float(w)) for shards, w in sets]
        self.tokenizer, self.features, self.seed = tokenizer, features, int(seed)
        self.augmenter, self.rank, self.world_size = augmenter, rank, world_size
        self.max_label_length, self.text_field = max_label_length, text_field

    def _slot(self) -> tuple[int, int]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        return self.rank * workers + wid, self.world_size * workers

    def _set_stream(self, i: int, slot: int, slots: int) -> Iterator[dict]:
        from ..shards import iter_samples
        from .data import decode_flac

        shards = self.sets[i][0]
        for pass_no in itertools.count():
            order = np.random.default_rng([self.seed, i, pass_no]).permutation(len(shards))
            n = 0
            for j in order:
                for key, files in iter_samples(Path(shards[j])):
                    mine = n % slots == slot
                    n += 1
                    if not mine:
                        continue
                    audio = decode_flac(files["flac"])
                    if self.augmenter is not None:
                        audio, _ = self.augmenter(audio, 16000, key, pass_no)
                    labels = self.tokenizer(json.loads(files["json"])[self.text_field]).input_ids
                    yield {"input_features": torch.from_numpy(self.features(audio)),
                           "labels": labels[: self.max_label_length]}
            if n == 0:
                raise ValueError(f"shard set {shards[:1]}... holds no samples")

    def __iter__(self) -> Iterator[dict]:
        slot, slots = self._slot()
        streams = [self._set_stream(i, slot, slots) for i in range(len(self.sets))]
        weights = np.array([w for _, w in self.sets])
        p = weights / weights.sum()
        rng = np.random.default_rng([self.seed, 10_000 + slot])
        while True:
            yield next(streams[int(rng.choice(len(streams), p=p))])


class SpeechCollator:
    """Stack features; pad labels with -100; drop a leading decoder-start token (the model
    prepends it when shifting labels right)."""

    def __init__(self, decoder_start_token_id: int):
        self.start = decoder_start_token_id

    def __call__(self, batch: list[dict]) -> dict:
        feats = torch.stack([b["input_features"] for b in batch])
        labels = [list(b["labels"]) for b in batch]
        if all(lab and lab[0] == self.start for lab in labels):
            labels = [lab[1:] for lab in labels]
        width = max(len(lab) for lab in labels)
        padded = torch.full((len(labels), width), -100, dtype=torch.long)
        for i, lab in enumerate(labels):
            padded[i, : len(lab)] = torch.tensor(lab, dtype=torch.long)
        return {"input_features": feats, "labels": padded}
