"""Weighted, streamed mixing of shard sets for training, on one process or many (DDP).

Each shard set is an endless stream: pass after pass over its shards, in an order drawn from
(seed, set, pass). Its samples are dealt round-robin to the *slots* — (rank, DataLoader worker)
pairs: the g-th sample the set streams (counting on across passes) is prepared by slot
g mod slots only; the other slots skip it without reading its audio. So within a pass the slots
see disjoint samples that together cover the set, whatever the shard sizes, and a slot never
runs dry: a set with fewer samples than slots still feeds every slot, a pass later (no rank
waits at the end of an epoch for another — training is bounded by ``max_steps`` and every rank
takes the same number of steps). At each step a set is drawn with probability proportional to
its weight from a generator seeded by (seed, slot). With ``shuffle_buffer=N`` the slot then
shuffles its samples through a buffer of N (webdataset's scheme, seeded by (seed, slot)): shards
keep their sample order, so without it every pass over a one-shard set repeats the same order.
The buffer holds the samples' FLAC bytes (not features); nothing else is held in memory.
On-the-fly augmentation uses the pass number as its epoch: every pass a different, reproducible
draw.

The rank and world size come from the arguments, else from ``torch.distributed`` when it is
initialized, else from the ``RANK``/``WORLD_SIZE`` variables that ``torchrun`` and
``accelerate launch`` set. The dataset splits by rank itself: under the Trainer, sweaug's
trainer keeps accelerate from slicing it again (see ``finetune.py``).

Debugging: with ``SWEAUG_TRACE_SAMPLES=<dir>`` every slot appends ``<set>\\t<pass>\\t<key>`` for
each sample it yields to ``<dir>/rank<R>.worker<W>.txt`` (the DDP test reads these).
"""
from __future__ import annotations

import itertools
import os
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

TRACE_ENV = "SWEAUG_TRACE_SAMPLES"


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): the given values, else torch.distributed's, else torchrun's env."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def iter_dealt(path: Path, start: int, slot: int, slots: int
               ) -> Iterator[tuple[int, str, dict[str, bytes] | None]]:
    """``(index, key, files)`` for every sample of one shard, numbered from ``start``; ``files``
    (``{extension: bytes}``) is read only for the samples of ``slot`` (index mod slots), None
    for the others, whose bytes are skipped. A truncated tar, or a sample without its
    ``.flac`` or ``.json`` (dealt to this slot or not), raises
    :class:`~sweaug.shards.ShardReadError` naming the shard and the member — in a DataLoader
    worker too (the main process gets the same message)."""
    from zlib import error as zlib_error

    from ..shards import ShardReadError, check_end, read_error
    from .samples import check_members

    where = "at its first member"
    try:
        with tarfile.open(path, "r") as tar:
            index, key, files, exts = start - 1, None, None, set()
            for m in tar:
                k, _, ext = m.name.partition(".")
                if k != key:
                    if key is not None:
                        check_members(path, key, exts)
                        yield index, key, files
                    index, key, exts = index + 1, k, set()
                    files = {} if index % slots == slot else None
                exts.add(ext)
                if files is not None:
                    where = f"reading member {m.name!r}"
                    files[ext] = tar.extractfile(m).read()
                where = f"after member {m.name!r}"
            check_end(tar, path, where)
            if key is not None:
                check_members(path, key, exts)
                yield index, key, files
    except (tarfile.TarError, EOFError, zlib_error) as e:
        if isinstance(e, ShardReadError):
            raise
        raise read_error(path, where, e) from None


class MixStream(IterableDataset):
    def __init__(self, sets: list[tuple[list[str | Path], float]], tokenizer, features, seed: int,
                 augmenter=None, rank: int | None = None, world_size: int | None = None,
                 max_label_length: int = 448, text_field: str = "text",
                 shuffle_buffer: int = 0):
        if not sets or any(w <= 0 for _, w in sets):
            raise ValueError("a mix needs shard sets with positive weights")
        self.sets = [([str(s) for s in shards], float(w)) for shards, w in sets]
        self.tokenizer, self.features, self.seed = tokenizer, features, int(seed)
        self.augmenter, self.rank, self.world_size = augmenter, rank, world_size
        self.max_label_length, self.text_field = max_label_length, text_field
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.shuffle_buffer = int(shuffle_buffer)

    def _slot(self) -> tuple[int, int, int, int]:
        """(slot, slots, rank, DataLoader worker id)."""
        from torch.utils.data import get_worker_info

        rank, world = rank_and_world(self.rank, self.world_size)
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        return rank * workers + wid, world * workers, rank, wid

    def _set_stream(self, i: int, slot: int, slots: int) -> Iterator[tuple]:
        """``(set, pass, key, files)`` of the set's samples dealt to ``slot``, pass after pass."""
        shards = self.sets[i][0]
        g = 0  # the index of the set's next sample, counted on across passes
        for pass_no in itertools.count():
            first = g
            order = np.random.default_rng([self.seed, i, pass_no]).permutation(len(shards))
            for j in order:
                for index, key, files in iter_dealt(Path(shards[j]), g, slot, slots):
                    g = index + 1
                    if files is not None:
                        yield i, pass_no, key, (shards[j], files)
            if g == first:
                raise ValueError(f"shard set {shards[:1]}... holds no samples")

    def _prepare(self, pass_no: int, key: str, sample: tuple[str, dict]) -> dict:
        from .data import decode_flac
        from .samples import sample_meta

        shard, files = sample
        text = sample_meta(shard, key, files, (self.text_field,))[self.text_field]
        audio = decode_flac(files["flac"])
        if self.augmenter is not None:
            audio, _ = self.augmenter(audio, 16000, key, pass_no)
        labels = self.tokenizer(text).input_ids
        return {"input_features": torch.from_numpy(self.features(audio)),
                "labels": labels[: self.max_label_length]}

    def __iter__(self) -> Iterator[dict]:
        slot, slots, rank, wid = self._slot()
        trace = None
        if os.environ.get(TRACE_ENV):
            folder = Path(os.environ[TRACE_ENV])
            folder.mkdir(parents=True, exist_ok=True)
            trace = open(folder / f"rank{rank}.worker{wid}.txt", "a", buffering=1)
        streams = [self._set_stream(i, slot, slots) for i in range(len(self.sets))]
        weights = np.array([w for _, w in self.sets])
        p = weights / weights.sum()
        rng = np.random.default_rng([self.seed, 10_000 + slot])
        mixed = (next(streams[int(rng.choice(len(streams), p=p))]) for _ in itertools.count())
        try:
            for i, pass_no, key, files in shuffled(mixed, self.shuffle_buffer,
                                                   [self.seed, 20_000 + slot]):
                if trace is not None:
                    trace.write(f"{i}\t{pass_no}\t{key}\n")
                yield self._prepare(pass_no, key, files)
        finally:
            if trace is not None:
                trace.close()


def shuffled(items: Iterator, size: int, seed) -> Iterator:
    """``items`` through a shuffle buffer of ``size`` (0: unchanged), seeded: the buffer fills,
    then each new item replaces a uniformly drawn one, which is yielded."""
    if size <= 0:
        yield from items
        return
    rng = np.random.default_rng(seed)
    buf = []
    for x in items:
        if len(buf) < size:
            buf.append(x)
            continue
        j = int(rng.integers(size))
        buf[j], x = x, buf[j]
        yield x
    while buf:  # a finite input (tests): drain in random order
        yield buf.pop(int(rng.integers(len(buf))))


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
