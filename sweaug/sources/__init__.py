"""Corpus sources: one module per corpus, imported only when asked for.

Every source has the same verbs: ``download()`` makes the corpus available locally (fetching
it where it can be fetched) and ``records(split)`` parses what is on disk into
:class:`~sweaug.records.Utterance` records (and :class:`~sweaug.records.Drop` for unusable
rows). ``release()`` names the version being read.
"""
from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..records import SPLITS, Drop, Utterance

REGISTRY = {
    "cv": "sweaug.sources.cv:CommonVoice",
    "fleurs": "sweaug.sources.fleurs:Fleurs",
    "voxpopuli": "sweaug.sources.voxpopuli:VoxPopuli",
    "rixvox": "sweaug.sources.rixvox:RixVox",
    "local": "sweaug.sources.local:LocalFolder",
}


@dataclass
class SourceOptions:
    """What a user can say about one source (CLI flags ``--<source>-dir`` etc.)."""

    path: Path | None = None  # local copy (folder or archive); None = fetch where possible
    language: str = "sv"
    cache_dir: Path | None = None
    revision: str | None = None  # Hub revision override (the module pins a default)
    max_hours: float | None = None  # per split, for sources that can stream a slice
    extra: tuple[str, ...] = ()  # source-specific extras, e.g. cv: ("validated",)
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.cache_dir is None:  # extraction and archive-index cache (not Hub files)
            self.cache_dir = Path(os.environ.get("SWEAUG_CACHE", Path.home() / ".cache" / "sweaug"))


class Source:
    """Base class: subclasses set ``name``, ``extras_fields`` and implement the verbs."""

    name = ""
    splits: tuple[str, ...] = SPLITS
    eval_splits: tuple[str, ...] = ("validation", "test")
    extras_fields: tuple[str, ...] = ()

    def __init__(self, opts: SourceOptions):
        self.opts = opts

    def download(self) -> Path:  # pragma: no cover - interface
        raise NotImplementedError

    def release(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError

    def records(self, split: str) -> Iterator[Utterance | Drop]:  # pragma: no cover
        raise NotImplementedError

    def archive_drops(self) -> list[Drop]:
        """Drops found in the source's archives as a whole (e.g. unsafe members)."""
        return []

    def revision(self) -> str:
        """The Hub revision to fetch: ``--<source>-revision``, else the one pinned in
        ``manifests/<source>.yaml``."""
        if self.opts.revision:
            return self.opts.revision
        from .catalog import load
        return load(self.name)["hub"]["revision"]

    def where(self) -> str:
        """'local copy' or ``repo@revision``, for the manifest's release field."""
        if self.opts.path is not None:
            return "local copy"
        from .catalog import load
        return f"{load(self.name)['hub']['repo_id']}@{self.revision()[:12]}"

    def count_check(self) -> dict:
        """``{split: {"expected": n, "read": m}}`` where the catalog knows the release."""
        return {}

    def extras(self, **values: str) -> dict[str, str]:
        """The source's extras dict: every declared field, as a string ('' when absent)."""
        return {k: "" if values.get(k) is None else str(values.get(k)) for k in self.extras_fields}


def get_source(name: str, opts: SourceOptions) -> Source:
    if name not in REGISTRY:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(importlib.import_module(module), cls)(opts)
