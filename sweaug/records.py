"""The one record type that flows through the pipeline, and the record of a dropped item."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

SPLITS = ("train", "validation", "test")
EVAL_SPLITS = ("validation", "test")

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def make_key(source: str, source_id: str) -> str:
    """A stable, dot-free, filesystem- and WebDataset-safe key for ``source_id``.

    Characters other than ``[A-Za-z0-9_-]`` become ``_``; when anything had to change,
    a short hash of the original id is appended so that two ids that differ only in
    such characters (``a.b`` and ``a_b``) still get different keys.
    """
    clean = _UNSAFE_KEY_CHARS.sub("_", source_id).strip("_") or "x"
    if clean != source_id:
        clean += "-" + hashlib.sha1(source_id.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    return f"{source}_{clean}"


@dataclass(frozen=True)
class AudioRef:
    """Where a clip's bytes live: a file, or a member of a tar archive (``member`` set)."""

    path: str
    member: str | None = None

    def describe(self) -> str:
        return f"{self.path}:{self.member}" if self.member else self.path


@dataclass(frozen=True)
class Utterance:
    """One clip and its transcript, as every source yields it and every stage reads it.

    ``text`` is the raw transcript as the source has it; ``target`` (orthographic training
    target) and ``normalized`` (for WER and leakage matching) are filled by normalization.
    ``extras`` holds source-specific fields: every record of one source has the same
    extras keys, all with string values, so that shard JSON has one schema per source.
    ``unlabelled`` marks audio that has no transcript at all (a ``local`` folder whose metadata
    has no text): ``text`` is "" and the text filters do not apply (see build/filters.py).
    """

    key: str
    source: str
    split: str
    language: str
    source_id: str
    text: str
    speaker: str
    gender: str
    audio: AudioRef
    duration: float | None = None
    extras: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)
    target: str = ""
    normalized: str = ""
    unlabelled: bool = False

    def with_text(self, target: str, normalized: str) -> "Utterance":
        return replace(self, target=target, normalized=normalized)


@dataclass(frozen=True)
class Drop:
    """An item that did not make it into the corpus, and why (a named reason)."""

    source: str
    split: str
    item: str  # the source's id, file or archive member
    reason: str
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "split": self.split, "item": self.item,
                "reason": self.reason, "detail": self.detail}


class SourceError(Exception):
    """A problem with a source as a whole (missing split file, unreadable header, ...).

    The message names the file; the CLI prints it without a traceback.
    """


class ConfigError(ValueError):
    """Settings that make no sense (inverted bounds, zero copies, ...); printed without a
    traceback by the CLI."""
