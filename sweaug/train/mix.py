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
The buffer holds references to the samples (shard, member offsets), not their bytes: a
sample's members are read when it leaves the buffer to be prepared. On-the-fly augmentation
uses the pass number as its epoch: every pass a different, reproducible draw.

So a slot's stream is a pure function of (seed, slot, slots), and resuming seeks it: the items
before the checkpoint's position are skipped as references (tar headers only), instead of
transformers' default of replaying global_step x accumulation batches through decoding,
augmentation and log-mel (:class:`StreamProgress`). Samples too long for the model's window
(after augmentation) or its decoder are dropped and counted, not cut (:class:`MixStream`).

The rank and world size come from the arguments, else from ``torch.distributed`` when it is
initialized, else from the ``RANK``/``WORLD_SIZE`` variables that ``torchrun`` and
``accelerate launch`` set. The dataset splits by rank itself: under the Trainer, sweaug's
trainer keeps accelerate from slicing it again (see ``finetune.py``).

Debugging: with ``SWEAUG_TRACE_SAMPLES=<dir>`` every slot appends ``<set>\\t<pass>\\t<key>`` for
each sample it yields to ``<dir>/rank<R>.worker<W>.txt`` (the DDP test reads these).
"""
from __future__ import annotations

import itertools
import logging
import os
import tarfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

TRACE_ENV = "SWEAUG_TRACE_SAMPLES"
log = logging.getLogger("sweaug.train")


def rank_and_world(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """(rank, world size): the given values, else torch.distributed's, else torchrun's env."""
    if rank is not None and world_size is not None:
        return int(rank), int(world_size)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def iter_dealt(path: Path, start: int, slot: int, slots: int
               ) -> Iterator[tuple[int, str, dict[str, tuple[int, int]] | None]]:
    """``(index, key, members)`` for every sample of one shard, numbered from ``start``;
    ``members`` (``{extension: (offset, size)}`` of the member data in the tar) is given for
    the samples of ``slot`` (index mod slots), None for the others. Only the tar headers are
    read (a shard is an uncompressed tar: ``tarfile`` seeks over the data), so seeking a stream
    to a position costs a header scan, not the audio; :func:`read_members` reads the bytes when
    the sample is prepared. A truncated tar, or a sample without its ``.flac`` or ``.json``
    (dealt to this slot or not), raises :class:`~sweaug.build.shards.ShardReadError` naming the
    shard and the member — in a DataLoader worker too (the main process gets the same
    message)."""
    from zlib import error as zlib_error

    from ..build.shards import ShardReadError, check_end, read_error
    from .samples import check_members

    where = "at its first member"
    try:
        with tarfile.open(path, "r") as tar:
            index, key, members, exts = start - 1, None, None, set()
            for m in tar:
                k, _, ext = m.name.partition(".")
                if k != key:
                    if key is not None:
                        check_members(path, key, exts)
                        yield index, key, members
                    index, key, exts = index + 1, k, set()
                    members = {} if index % slots == slot else None
                exts.add(ext)
                if members is not None:
                    members[ext] = (m.offset_data, m.size)
                where = f"after member {m.name!r}"
            check_end(tar, path, where)
            if key is not None:
                check_members(path, key, exts)
                yield index, key, members
    except (tarfile.TarError, EOFError, zlib_error) as e:
        if isinstance(e, ShardReadError):
            raise
        raise read_error(path, where, e) from None


def read_members(path: str | Path, key: str, members: dict[str, tuple[int, int]]
                 ) -> dict[str, bytes]:
    """``{extension: bytes}`` of one sample from the ``(offset, size)`` that :func:`iter_dealt`
    found; a member cut short (the shard changed or was truncated since) raises
    :class:`~sweaug.build.shards.ShardReadError` naming the shard and the member."""
    from ..build.shards import read_error

    out = {}
    try:
        with open(path, "rb") as f:
            for ext, (offset, size) in members.items():
                f.seek(offset)
                data = f.read(size)
                if len(data) != size:
                    raise EOFError(f"{len(data)} of {size} bytes")
                out[ext] = data
    except (OSError, EOFError) as e:
        raise read_error(path, f"reading member {key + '.' + ext!r}", e) from None
    return out


#: why a training sample is dropped (counted per slot, reported in results.json and the report)
DROP_REASONS = ("over_window", "over_max_labels", "augment_failed")
#: how many drops of each reason a slot logs by key before it only counts them
LOGGED_DROPS = 3


class MixStream(IterableDataset):
    """The mix as an endless stream of prepared samples (``input_features``, ``labels`` and
    ``stream``: where it came from, for resuming; a ``sweaug windows`` sample also ``prompt``
    and ``first_target``, see labels.py). See the module docstring for the order.

    ``max_audio_samples`` (the model's window, in samples at 16 kHz) and ``max_label_tokens``
    (the decoder's ``max_target_positions``): a sample whose audio *after augmentation* is
    longer, or whose labels (without the decoder-start token the collator drops) are longer, is
    dropped — not cut, which would train the model to emit a transcript for audio it never
    heard, or a transcript without its end token — counted per reason (:data:`DROP_REASONS`)
    and the first few logged by key. The labels are checked before the audio is decoded. A draw
    of the on-the-fly augmentation that fails (``AugmentError``: clipping, NaN) drops the
    sample for that pass, counted as ``augment_failed`` — as ``sweaug augment`` drops it —
    instead of ending the training run.

    ``start`` resumes the stream: ``{slot: {"position": q, "dropped": {reason: n}}}`` (what
    :class:`StreamProgress` recorded in a checkpoint). A slot's stream is a pure function of
    (seed, slot, slots): the first ``q`` items of its shuffled mix are skipped as references
    (tar headers only — no audio read, decoded, augmented or turned into features) and the
    drop counts go on from ``dropped``; ``worker_offset`` (the batches the checkpoint consumed,
    mod the DataLoader workers) lets the workers take their turns where they stopped."""

    def __init__(self, sets: list[tuple[list[str | Path], float]], tokenizer, features, seed: int,
                 augmenter=None, rank: int | None = None, world_size: int | None = None,
                 max_label_tokens: int | None = 448, text_field: str = "text",
                 shuffle_buffer: int = 0, max_audio_samples: int | None = None,
                 start: dict | None = None, worker_offset: int = 0):
        if not sets or any(w <= 0 for _, w in sets):
            raise ValueError("a mix needs shard sets with positive weights")
        self.sets = [([str(s) for s in shards], float(w)) for shards, w in sets]
        self.tokenizer, self.features, self.seed = tokenizer, features, int(seed)
        self.augmenter, self.rank, self.world_size = augmenter, rank, world_size
        self.max_label_tokens, self.text_field = max_label_tokens, text_field
        self.max_audio_samples = max_audio_samples
        if shuffle_buffer < 0:
            raise ValueError(f"shuffle_buffer must be >= 0, got {shuffle_buffer}")
        self.shuffle_buffer = int(shuffle_buffer)
        self.start = {int(k): v for k, v in (start or {}).items()}
        self.worker_offset = int(worker_offset)
        self._labeller = None

    def _slot(self) -> tuple[int, int, int, int]:
        """(slot, slots, rank, DataLoader worker id)."""
        from torch.utils.data import get_worker_info

        rank, world = rank_and_world(self.rank, self.world_size)
        info = get_worker_info()
        workers, wid = (info.num_workers, info.id) if info else (1, 0)
        # A DataLoader takes batches from its workers in turn, worker 0 first. A resumed run
        # whose checkpoint consumed b batches continues with slot b mod workers: worker w
        # serves slot (w + b) mod workers, so the turns go on where they stopped.
        return rank * workers + (wid + self.worker_offset) % workers, world * workers, rank, wid

    def _set_stream(self, i: int, slot: int, slots: int) -> Iterator[tuple]:
        """``(set, pass, key, (shard, members))`` of the set's samples dealt to ``slot``, pass
        after pass (references: :func:`read_members` reads them)."""
        shards = self.sets[i][0]
        g = 0  # the index of the set's next sample, counted on across passes
        for pass_no in itertools.count():
            first = g
            order = np.random.default_rng([self.seed, i, pass_no]).permutation(len(shards))
            for j in order:
                for index, key, members in iter_dealt(Path(shards[j]), g, slot, slots):
                    g = index + 1
                    if members is not None:
                        yield i, pass_no, key, (shards[j], members)
            if g == first:
                raise ValueError(f"shard set {shards[:1]}... holds no samples")

    def _prepare(self, pass_no: int, key: str, sample: tuple[str, dict]) -> dict | str:
        """The training sample, or the reason (:data:`DROP_REASONS`) it is dropped."""
        from .data import decode_flac
        from .labels import Labeller, is_window
        from .samples import sample_meta

        shard, members = sample
        files = read_members(shard, key, members)
        meta = sample_meta(shard, key, files, (self.text_field,))
        if self._labeller is None:
            self._labeller = Labeller(self.tokenizer, self.max_label_tokens or 448,
                                      self.text_field)
        lab = self._labeller(meta)
        # the decoder reads the prompt and the labels without the last token
        if self.max_label_tokens is not None and lab.decoder_length() > self.max_label_tokens:
            return "over_max_labels"
        audio = decode_flac(files["flac"])
        if self.augmenter is not None:
            from ..augment import AugmentError
            before = len(audio)
            try:
                audio, _ = self.augmenter(audio, 16000, key, pass_no)
            except AugmentError as e:  # e.g. a draw that clips: `sweaug augment` drops it too
                return "augment_failed", f"{e.reason}: {e.detail}"
            if len(audio) != before and is_window(meta):
                # a uniform time stretch (the only length change ablate allows for windows:
                # recipe.check_windows) moves every segment by the same factor; a window
                # stretched past the model's window is cut there, its segments past the cut
                # left out and the one crossing it straddling (Whisper's window-end rule)
                limit = self.max_audio_samples
                cut = limit / 16000 if limit is not None and len(audio) > limit else None
                lab = self._labeller(meta, scale=len(audio) / before, cut=cut)
                if lab is None:  # a <|notimestamps|> window cut inside its first segment
                    return "over_window"
                if lab.cut_at is not None:
                    audio = audio[:int(round(lab.cut_at * 16000))]
        if self.max_audio_samples is not None and len(audio) > self.max_audio_samples:
            return "over_window"
        out = {"input_features": torch.from_numpy(self.features(audio)), "labels": lab.labels}
        if lab.prompt:
            out["prompt"] = lab.prompt
        if lab.first_target is not None:
            out["first_target"] = lab.first_target
        return out

    def __iter__(self) -> Iterator[dict]:
        slot, slots, rank, wid = self._slot()
        state = self.start.get(slot) or {}
        skip = int(state.get("position", 0))
        dropped = {r: int((state.get("dropped") or {}).get(r, 0)) for r in DROP_REASONS}
        logged = dict.fromkeys(DROP_REASONS, 0)
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
        run = 0  # consecutive drops
        try:
            for q, (i, pass_no, key, ref) in enumerate(
                    shuffled(mixed, self.shuffle_buffer, [self.seed, 20_000 + slot])):
                if q < skip:  # resuming: a reference, nothing read
                    continue
                if trace is not None:
                    trace.write(f"{i}\t{pass_no}\t{key}\n")
                sample = self._prepare(pass_no, key, ref)
                detail = ""
                if isinstance(sample, tuple):
                    sample, detail = sample
                if isinstance(sample, str):
                    dropped[sample] += 1
                    run += 1
                    if run >= MAX_CONSECUTIVE_DROPS:  # an endless stream that yields nothing
                        raise ValueError(
                            f"slot {slot}: the last {run} training samples were all dropped "
                            f"({', '.join(f'{n} {r}' for r, n in dropped.items() if n)}; last: "
                            f"{key} in {ref[0]}): the shard sets hold (almost) no sample that "
                            f"fits the model's window and max_target_positions")
                    if logged[sample] < LOGGED_DROPS:
                        logged[sample] += 1
                        log.warning("training sample %s (%s, pass %d) dropped: %s%s%s", key,
                                    ref[0], pass_no, _DROP_WORDS[sample],
                                    f" ({detail})" if detail else "",
                                    "; further drops are counted, not logged"
                                    if logged[sample] == LOGGED_DROPS else "")
                    continue
                run = 0
                sample["stream"] = (slot, q + 1, *(dropped[r] for r in DROP_REASONS))
                yield sample
        finally:
            if trace is not None:
                trace.close()


MAX_CONSECUTIVE_DROPS = 1000

_DROP_WORDS = {"over_window": "its audio after augmentation is longer than the model's window",
               "over_max_labels": "its labels are longer than the decoder's max_target_positions",
               "augment_failed": "its on-the-fly augmentation failed"}


class StreamProgress:
    """Where each slot of this rank stands: the position after the last sample the training
    loop *consumed* (not what DataLoader workers prefetched) and its drop counts, from the
    ``stream`` field of every batch (:meth:`consume`). Written into each checkpoint
    (:meth:`save`) and read back on resume (:meth:`load`) to seek the stream there."""

    FILE = "sweaug_stream-rank{rank}.json"

    def __init__(self, rank: int, slots: int, workers: int, world_size: int,
                 state: dict | None = None, batches: int = 0):
        self.rank, self.slots, self.workers, self.world_size = rank, slots, workers, world_size
        self.state = {int(k): v for k, v in (state or {}).items()}
        self.batches = int(batches)

    def consume(self, stream: list[tuple]) -> None:
        """One batch the training loop took, with its samples' ``stream`` tuples."""
        self.batches += 1
        for slot, position, *dropped in stream:
            if position > self.state.get(slot, {}).get("position", -1):
                self.state[slot] = {"position": position,
                                    "dropped": dict(zip(DROP_REASONS, dropped))}

    def dropped(self) -> dict[str, int]:
        return {r: sum(s["dropped"].get(r, 0) for s in self.state.values())
                for r in DROP_REASONS}

    def samples(self) -> int:
        """Items of the mix this rank has gone through (kept and dropped)."""
        return sum(s["position"] for s in self.state.values())

    def save(self, folder: Path) -> None:
        import json

        from ..files import atomic_write_bytes

        atomic_write_bytes(Path(folder) / self.FILE.format(rank=self.rank), json.dumps(
            {"slots": self.slots, "workers": self.workers, "world_size": self.world_size,
             "batches": self.batches, "state": {str(k): v for k, v in sorted(self.state.items())}},
            indent=1).encode())

    @classmethod
    def load(cls, folder: Path, rank: int, slots: int, workers: int, world_size: int
             ) -> "StreamProgress":
        """The progress a checkpoint recorded for ``rank``; a checkpoint made with other
        processes or DataLoader workers deals the samples to other slots, so it cannot be
        continued exactly: refused, naming both."""
        import json

        f = Path(folder) / cls.FILE.format(rank=rank)
        try:
            d = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{f}: unreadable ({e}): cannot seek the stream to where the "
                             f"checkpoint stopped") from None
        if (d.get("world_size"), d.get("workers")) != (world_size, workers):
            raise ValueError(
                f"{folder} was trained on {d.get('world_size')} process(es) x "
                f"{d.get('workers')} DataLoader worker(s); this run has {world_size} x {workers}, "
                f"which deals the samples differently: run it as before, or delete {folder.parent} "
                f"to train from the start")
        return cls(rank, slots, workers, world_size, d.get("state"), int(d.get("batches", 0)))


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
    prepends it when shifting labels right); stack MixStream's ``stream`` positions (the
    trainer takes them out of the batch before the model sees it).

    A batch with a window's previous-text prompt (``prompt``) or a no-speech target
    (``first_target``, see labels.py) gets explicit ``decoder_input_ids``: per sample the prompt
    then the labels without their last token, padded with ``pad_token_id``; its ``labels`` are
    the next tokens, -100 over the prompt (and at the prompt's last position, whose next token
    is the forced ``<|startoftranscript|>``) and the padding. Whisper's decoder is causal, so
    right padding changes no earlier position. A batch of plain labels stays as before (the
    model shifts them itself)."""

    def __init__(self, decoder_start_token_id: int, pad_token_id: int = 50257):
        self.start, self.pad = decoder_start_token_id, pad_token_id

    def __call__(self, batch: list[dict]) -> dict:
        feats = torch.stack([b["input_features"] for b in batch])
        # plain Python values (not moved to the GPU): MixStream's positions (StreamProgress),
        # and what the batch holds, for the throughput
        info = {"samples": len(batch)}
        if all("stream" in b for b in batch):
            info["stream"] = [tuple(b["stream"]) for b in batch]
        labels = [list(b["labels"]) for b in batch]
        if any(b.get("prompt") or b.get("first_target") is not None for b in batch):
            return self._explicit(batch, labels, feats, info)
        if all(lab and lab[0] == self.start for lab in labels):
            labels = [lab[1:] for lab in labels]
        width = max(len(lab) for lab in labels)
        padded = torch.full((len(labels), width), -100, dtype=torch.long)
        for i, lab in enumerate(labels):
            padded[i, : len(lab)] = torch.tensor(lab, dtype=torch.long)
        info["label_tokens"] = sum(len(lab) for lab in labels)
        return {"input_features": feats, "labels": padded, "sweaug": info}

    def _explicit(self, batch, labels, feats, info) -> dict:
        if not all(lab and lab[0] == self.start for lab in labels):
            raise ValueError("window labels must start with the decoder-start token")
        inputs, targets = [], []
        for b, lab in zip(batch, labels):
            prompt = list(b.get("prompt") or [])
            inputs.append(prompt + lab[:-1])
            target = [-100] * len(prompt) + lab[1:]
            if b.get("first_target") is not None:
                target[len(prompt)] = int(b["first_target"])
            targets.append(target)
        width = max(len(x) for x in inputs)
        dec = torch.full((len(batch), width), self.pad, dtype=torch.long)
        lab_t = torch.full((len(batch), width), -100, dtype=torch.long)
        for i, (x, y) in enumerate(zip(inputs, targets)):
            dec[i, : len(x)] = torch.tensor(x, dtype=torch.long)
            lab_t[i, : len(y)] = torch.tensor(y, dtype=torch.long)
        info["label_tokens"] = int((lab_t != -100).sum())
        return {"input_features": feats, "decoder_input_ids": dec, "labels": lab_t,
                "sweaug": info}
