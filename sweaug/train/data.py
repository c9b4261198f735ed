"""The streaming training input: WebDataset shards -> 16 kHz audio -> on-the-fly augmentation
(``Augmenter``, a different but reproducible draw each epoch) -> Whisper log-mel features ->
token ids. Nothing is held in memory beyond the sample being prepared.

Shards are dealt to (rank, DataLoader worker) pairs round-robin, so no two workers read the
same shard, and each sample's augmentation depends only on (seed, key, epoch): whichever
worker prepares a sample, it gets the same draw, and no worker repeats another's.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from .samples import check_members, sample_meta


def decode_flac(data: bytes) -> np.ndarray:
    import soundfile as sf

    x, sr = sf.read(io.BytesIO(data), dtype="float32")
    if sr != 16000:
        raise ValueError(f"expected 16 kHz audio, got {sr} Hz")
    return x


class ShardStream(IterableDataset):
    """An iterable dataset of training examples: ``{"key", "input_features", "labels"}``.

    ``tokenizer`` should have its prefix tokens set (language, task); ``features`` is a callable
    mapping 16 kHz audio to log-mel features (``LogMel(feature_extractor)``).
    """

    def __init__(self, shards: list[str | Path], tokenizer, features, augmenter=None,
                 epoch: int = 0, rank: int = 0, world_size: int = 1, text_field: str = "text"):
        self.shards = [str(s) for s in shards]
        self.tokenizer, self.features, self.augmenter = tokenizer, features, augmenter
        self.epoch, self.rank, self.world_size, self.text_field = epoch, rank, world_size, text_field

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def my_shards(self) -> list[str]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        slot, slots = self.rank * workers + wid, self.world_size * workers
        return self.shards[slot::slots]

    def __iter__(self) -> Iterator[dict]:
        from ..build.shards import iter_samples

        for shard in self.my_shards():
            for key, files in iter_samples(Path(shard)):
                check_members(shard, key, files)
                meta = sample_meta(shard, key, files, (self.text_field,))
                audio = decode_flac(files["flac"])
                if self.augmenter is not None:
                    audio, _ = self.augmenter(audio, 16000, key, self.epoch)
                # a tensor: DataLoader workers hand it over in shared memory, not pickled
                yield {"key": key, "input_features": torch.from_numpy(self.features(audio)),
                       "labels": self.tokenizer(meta[self.text_field]).input_ids}
