"""Deterministic partitions of a build, and the worker that turns one partition into shards.

A partition is a pure function of the record stream: loose files are cut, in the order the
source yields them, into chunks of ``shard_samples``; records inside an archive form one
partition per archive (read in one streaming pass, samples written in archive order). A partition's output depends on
nothing but its records and the settings, so any executor, worker count or re-run gives the
same bytes, and a distributed executor can run the same partitions elsewhere.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Iterator

from ..records import Drop, Utterance

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
            if u.unlabelled:  # only then: labelled partitions keep their hashes
                h.update(b"unlabelled")
        return h.hexdigest()


def partition_stream(records: Iterable[Utterance], settings: Settings) -> Iterator[Partition]:
    """Cut one (source, split)'s record stream into partitions, in arrival order.

    A partition closes when the archive changes (records inside one archive form one
    partition, read in one streaming pass) or, for loose files, at ``shard_samples`` records.
    Only the partition being filled is held in memory.
    """
    chunk: list[Utterance] = []
    archive, index = None, 0
    for u in records:
        a = u.audio.path if u.audio.member is not None else None
        if chunk and (a != archive or (a is None and len(chunk) >= settings.shard_samples)):
            yield Partition(chunk[0].source, chunk[0].split, index, tuple(chunk), settings, archive)
            chunk, index = [], index + 1
        archive = a
        chunk.append(u)
    if chunk:
        yield Partition(chunk[0].source, chunk[0].split, index, tuple(chunk), settings, archive)


def sample_meta(u: Utterance, clip) -> dict:
    """The JSON stored next to each clip: the same keys and types in every sample, of every
    source (``extras``, the source's own fields, is one JSON string: see ``extras_json``).
    An unlabelled record's JSON also has ``"unlabelled": true`` (text fields ""), the key absent
    otherwise so that labelled samples keep their bytes; ``sweaug label`` reads it."""
    from .shards import extras_json

    meta = {
        "key": u.key, "source": u.source, "source_id": u.source_id, "split": u.split,
        "language": u.language, "text": u.target, "text_raw": u.text,
        "text_normalized": u.normalized, "speaker": u.speaker, "gender": u.gender,
        "duration": round(clip.duration, 4), "num_samples": clip.num_samples,
        "sample_rate": 16000, "source_sample_rate": clip.source_sample_rate,
        "source_channels": clip.source_channels, "rms_dbfs": float(clip.rms_dbfs),
        "clip_fraction": float(clip.clip_fraction), "extras": extras_json(u.extras),
    }
    if u.unlabelled:
        meta["unlabelled"] = True
    return meta


def _audio_bytes(part: Partition) -> Iterator[tuple[Utterance, bytes | str | None, str]]:
    """``(record, bytes or file path, error)`` in output order: arrival order for loose files
    (decoded from their path), archive order for archive members. Without data, ``error`` is
    ``"<drop reason>: <detail>"``. An archive is read in one pass that checks it whole: a
    damaged one raises SourceError (and the partition keeps nothing, see run_partition)."""
    if part.archive is None:
        for u in part.records:
            if os.path.isfile(u.audio.path):
                yield u, u.audio.path, ""
            else:
                yield u, None, f"missing_audio: {u.audio.path} is not a file"
        return
    from .audio import max_member_bytes
    from ..sources._common import iter_archive

    by_member = {u.audio.member: u for u in part.records}
    done = set()
    bound = max_member_bytes(part.settings.filters.get("max_duration", 30.0))
    for member, data, err in iter_archive(Path(part.archive), set(by_member), bound):
        if member not in done:
            done.add(member)
            yield by_member[member], data, err and f"oversized_member: {err}"
    for member in sorted(set(by_member) - done):
        yield by_member[member], None, f"missing_audio: {member} not found in {part.archive}"


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
            if data is None:  # not there, or an archive member over the size bound
                reason, _, detail = err.partition(": ")
                drops.append(Drop(u.source, u.split, item, reason, detail))
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
