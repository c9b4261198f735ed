"""Deterministic partitions of a build, and the worker that turns one partition into shards.

A partition is a pure function of the records: loose files are sorted by key and cut into
chunks of ``shard_samples``; records inside an archive form one partition per archive (read in
one streaming pass, samples written in archive order). A partition's output depends on
nothing but its records and the settings, so any executor, worker count or re-run gives the
same bytes, and a distributed executor can run the same partitions elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from itertools import groupby
from pathlib import Path
from typing import Iterator

from .records import Drop, Utterance

log = logging.getLogger("sweaug.build")


@dataclass(frozen=True)
class Settings:
    """Everything besides the records that decides a partition's output bytes."""

    shard_samples: int
    shard_bytes: int
    filters: dict
    normalizer: str
    version: str
    strict: bool = False


@dataclass(frozen=True)
class Partition:
    """One job of a build (see jobs.py): records of one (source, split), written by one worker."""

    source: str
    split: str
    index: int
    records: tuple[Utterance, ...]
    settings: Settings
    archive: str | None = None

    @property
    def group(self) -> str:
        return self.source

    @property
    def name(self) -> str:
        return f"{self.source}/{self.split}/{self.index:05d}"

    @property
    def weight(self) -> float:
        return sum(u.duration if u.duration else 5.0 for u in self.records)

    def run(self, state: Path) -> dict:
        return run_partition(self, state)

    def input_hash(self) -> str:
        h = hashlib.sha256(json.dumps(asdict(self.settings), sort_keys=True).encode())
        for u in self.records:
            h.update(json.dumps([u.key, u.split, u.audio.path, u.audio.member, u.text, u.target,
                                 u.normalized, u.speaker, u.gender, u.duration, u.source_id,
                                 u.language, dict(u.extras)], ensure_ascii=False).encode())
        return h.hexdigest()


def make_partitions(records: list[Utterance], settings: Settings) -> list[Partition]:
    """Cut one (source, split)'s records into partitions, deterministically."""
    shard_samples = settings.shard_samples
    out: list[Partition] = []
    recs = sorted(records, key=lambda u: (u.audio.path if u.audio.member else "", u.key))
    loose = [u for u in recs if u.audio.member is None]
    for start in range(0, len(loose), shard_samples):
        chunk = tuple(loose[start:start + shard_samples])
        out.append(Partition(chunk[0].source, chunk[0].split, len(out), chunk, settings))
    in_archives = [u for u in recs if u.audio.member is not None]
    for archive, group in groupby(in_archives, key=lambda u: u.audio.path):
        chunk = tuple(group)
        out.append(Partition(chunk[0].source, chunk[0].split, len(out), chunk, settings, archive))
    return out


def sample_meta(u: Utterance, clip) -> dict:
    """The JSON stored next to each clip: the same keys and types in every sample."""
    return {
        "key": u.key, "source": u.source, "source_id": u.source_id, "split": u.split,
        "language": u.language, "text": u.target, "text_raw": u.text,
        "text_normalized": u.normalized, "speaker": u.speaker, "gender": u.gender,
        "duration": round(clip.duration, 4), "num_samples": clip.num_samples,
        "sample_rate": 16000, "source_sample_rate": clip.source_sample_rate,
        "source_channels": clip.source_channels, "rms_dbfs": float(clip.rms_dbfs),
        "clip_fraction": float(clip.clip_fraction), "extras": dict(u.extras),
    }


def _audio_bytes(part: Partition) -> Iterator[tuple[Utterance, bytes | None, str]]:
    """``(record, bytes, error)`` in output order: by key for files, archive order for tars."""
    if part.archive is None:
        for u in part.records:
            try:
                with open(u.audio.path, "rb") as f:
                    yield u, f.read(), ""
            except OSError as e:
                yield u, None, f"{type(e).__name__}: {e.strerror or e}"
        return
    from .sources._common import iter_archive

    by_member = {u.audio.member: u for u in part.records}
    done = set()
    for member, data in iter_archive(Path(part.archive), set(by_member)):
        if member not in done:
            done.add(member)
            yield by_member[member], data, ""
    for member in sorted(set(by_member) - done):
        yield by_member[member], None, f"{member} not found in {part.archive}"


def run_partition(part: Partition, state_dir: Path) -> dict:
    """Build one partition's shards in the staging area and record what was done.

    Per-item problems become drops; the partition record is written (atomically) only after
    every shard of the partition is complete, so a killed worker leaves nothing that looks done.
    """
    from . import audio
    from .filters import FilterConfig, audio_reason
    from .jobs import staging_name, write_record
    from .shards import ShardWriter, sample_json

    settings = part.settings
    for old in staging_name(state_dir, part, 0).parent.glob(f"{part.index:05d}-*.tar"):
        old.unlink()
    filters = FilterConfig(**settings.filters)
    writer = ShardWriter(lambda j: staging_name(state_dir, part, j), settings.shard_samples,
                         settings.shard_bytes)
    drops: list[Drop] = []
    seconds, speakers, genders = 0.0, set(), {}
    train = part.split == "train"
    try:
        for u, data, err in _audio_bytes(part):
            item = u.source_id
            if data is None:
                drops.append(Drop(u.source, u.split, item, "missing_audio", err))
                continue
            try:
                clip = audio.process(data, expected_seconds=u.duration)
            except audio.AudioError as e:
                drops.append(Drop(u.source, u.split, item, e.reason, e.detail))
                continue
            except Exception as e:  # an unknown failure on one item: count it, go on
                if settings.strict:
                    raise
                log.warning("%s: unexpected error on %s: %r", part.name, item, e)
                drops.append(Drop(u.source, u.split, item, "unexpected_error", repr(e)[:200]))
                continue
            why = audio_reason(u, clip.duration, clip.clip_fraction, train, filters)
            if why:
                drops.append(Drop(u.source, u.split, item, *why))
                continue
            writer.write(u.key, [("flac", clip.flac), ("json", sample_json(sample_meta(u, clip)))])
            seconds += clip.duration
            if u.speaker:
                speakers.add(u.speaker)
            genders[u.gender or "unknown"] = genders.get(u.gender or "unknown", 0) + 1
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    result = {
        "partition": part.name, "input": part.input_hash(),
        "shards": [{"staged": s.path.name, "sha256": s.sha256, "samples": s.samples,
                    "bytes": s.bytes} for s in shards],
        "samples": sum(s.samples for s in shards), "seconds": round(seconds, 4),
        "speakers": sorted(speakers), "genders": dict(sorted(genders.items())),
        "drops": [d.as_dict() for d in drops],
    }
    write_record(state_dir, part, result)
    return result
