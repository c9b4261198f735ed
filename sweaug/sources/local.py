"""A user's own data: a folder of audio files plus ``metadata.tsv`` / ``.csv`` / ``.jsonl``
with ``path, text[, speaker][, split]`` (paths relative to the folder; without ``text``
altogether the folder is unlabelled audio, see below).

Rows without a ``split`` column (or value) go to ``train``, or with ``--split-by-speaker`` to
a seeded speaker-disjoint split (speaker_split.py; rows with a split keep it). ``split`` values
are read case-insensitively: train/training -> train, validation/val/valid/dev -> validation,
test -> test; any other value is an ``unknown_split`` drop (counted once, in the train pass).
Paths are normalized relative to the folder before they key anything: ``./audio/a.wav`` and
``audio/../audio/a.wav`` are ``audio/a.wav``; the first row naming a file (in file order, in
any split) is kept, later rows naming the same file are ``duplicate_id`` drops.

Unlabelled audio: metadata with no ``text`` at all (a TSV/CSV header without the column, a
JSONL file none of whose rows has a ``"text"`` key) makes the whole source unlabelled, so that
untranscribed audio can be built and then labelled (``sweaug label``). Every row is kept with
text "" and ``unlabelled`` set: the build skips the text filters and writes ``"unlabelled":
true`` into each sample and the manifest's source entry, and stages that need transcripts
refuse the folder. In a labelled file a row with an empty text is still an ``empty_text`` drop,
and a JSONL row without a ``"text"`` key (where other rows have one) a ``missing_fields`` drop.
"""
from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Iterator

from ..records import AudioRef, Drop, SourceError, Utterance, make_key
from .speaker_split import Group, assign_speakers, group_of, split_counts
from . import Source
from ._common import Row, read_tsv

METADATA_NAMES = ("metadata.tsv", "metadata.csv", "metadata.jsonl")
SPLIT_NAMES = {"": "train", "train": "train", "training": "train", "validation": "validation",
               "val": "validation", "valid": "validation", "dev": "validation", "test": "test"}


class LocalFolder(Source):
    name = "local"
    extras_fields = ("path",)

    def __init__(self, opts):
        super().__init__(opts)
        self._assigned: dict[Group, str] | None = None  # --split-by-speaker, see _assignment
        self._unsplit: Counter = Counter()  # group -> rows without a split
        self._unlabelled: bool | None = None  # see the unlabelled property

    def _folder(self) -> Path:
        if self.opts.path is None:
            raise SourceError("local: pass the folder with --local-dir")
        root = Path(self.opts.path).expanduser()
        if not root.is_dir():
            raise SourceError(f"local: {root} is not a folder")
        return root

    def download(self) -> Path:
        return self._folder()

    def release(self) -> str:
        return str(self._metadata_file().name)

    def _metadata_file(self) -> Path:
        root = self._folder()
        chosen = self.opts.options.get("metadata")
        if chosen:
            return root / chosen
        for name in METADATA_NAMES:
            if (root / name).exists():
                return root / name
        raise SourceError(f"local: no {' / '.join(METADATA_NAMES)} in {root}")

    @property
    def unlabelled(self) -> bool:
        """Whether the metadata has no transcripts at all (see the module docstring); read
        once, before any row, so that every row of the file is judged the same way."""
        if self._unlabelled is None:
            self._unlabelled = not _has_text(self._metadata_file())
        return self._unlabelled

    def _rows(self, meta: Path) -> Iterator[Row | Drop]:
        need = ("path",) if self.unlabelled else ("path", "text")
        if meta.suffix == ".tsv":
            yield from read_tsv(meta, self.name, "", required=need)
            return
        raw = meta.read_bytes()
        if meta.suffix == ".csv":
            try:
                text = raw.decode("utf-8-sig")
            except UnicodeDecodeError as e:
                raise SourceError(f"local: {meta} is not UTF-8: {e}") from None
            reader = csv.DictReader(io.StringIO(text))
            if not set(need) <= set(reader.fieldnames or ()):
                raise SourceError(f"local: {meta} needs columns {','.join(need)} "
                                  f"(has: {','.join(reader.fieldnames or ())})")
            for i, rec in enumerate(reader, start=2):
                if None in rec.values() or rec.get(None):
                    yield Drop(self.name, "", f"{meta.name}:{i}", "missing_fields", "")
                else:
                    yield Row(i, rec)
            return
        for i, line in enumerate(raw.split(b"\n"), start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                yield Drop(self.name, "", f"{meta.name}:{i}", "non_utf8_text"
                           if isinstance(e, UnicodeDecodeError) else "missing_fields", str(e)[:120])
                continue
            if not isinstance(rec, dict) or not set(need) <= set(rec):
                yield Drop(self.name, "", f"{meta.name}:{i}", "missing_fields",
                           f"needs {', '.join(need)}")
                continue
            yield Row(i, {k: "" if v is None else str(v) for k, v in rec.items()})

    def records(self, split: str) -> Iterator[Utterance | Drop]:
        assigned = self._assignment()
        for given, group, item in self._scan():
            if (given or assigned.get(group, "train")) == split:
                yield replace(item, split=split)

    def _assignment(self) -> dict[Group, str]:
        """Group -> split for the rows without a split under --split-by-speaker (else {}):
        one pass over the metadata, then kept for every split's pass."""
        plan = self.opts.options.get("split_by_speaker")
        if not plan:
            return {}
        if self._assigned is None:
            self._unsplit = Counter(g for given, g, item in self._scan()
                                    if given is None and isinstance(item, Utterance))
            self._assigned = assign_speakers(self._unsplit, plan["fractions"], plan["seed"])
        return self._assigned

    def speaker_split(self) -> dict | None:
        """Per split, the rows (and speakers) --split-by-speaker put there; None when off."""
        if not self.opts.options.get("split_by_speaker"):
            return None
        return split_counts(self._unsplit, self._assignment())

    def _scan(self) -> Iterator[tuple[str | None, Group | None, Utterance | Drop]]:
        """Every row of the metadata once, in file order, as ``(split, group, item)``: the
        row's split (None where the metadata gives none), its speaker group (speaker_split.py)
        and its record or drop, whose ``split`` records() fills in. Problems of the file or of
        the split value itself count under train."""
        root, meta = self._folder(), self._metadata_file()
        if not meta.exists():
            raise SourceError(f"local: missing metadata file {meta}")
        real_root = root.resolve()
        unlabelled = self.unlabelled
        seen: dict[Path, str] = {}  # resolved file -> where it was first named, all splits
        for row in self._rows(meta):
            if isinstance(row, Drop):
                yield "train", None, row
                continue
            f = row.fields
            where = f"{meta.name}:{row.line}"
            raw_split = f.get("split", "").strip()
            given = SPLIT_NAMES.get(raw_split.lower()) if raw_split else None
            if raw_split and given is None:
                yield "train", None, Drop(self.name, "train", where, "unknown_split",
                                          repr(raw_split[:80]))
                continue
            speaker = f.get("speaker", "").strip()
            group = group_of(speaker, "") if speaker else None  # without a speaker: the key
            raw = f["path"].strip()
            audio = (root / raw).resolve()
            if not raw or not audio.is_relative_to(real_root):
                yield given, group, Drop(self.name, "", where, "missing_fields",
                                         f"bad path {raw!r}")
                continue
            rel = os.path.normpath(raw).replace(os.sep, "/")
            if audio in seen:  # the same file under another spelling or in another split
                yield given, group, Drop(self.name, "", where, "duplicate_id",
                                         f"{raw} (first named at {seen[audio]})")
                continue
            seen[audio] = where
            if not audio.is_file():
                yield given, group, Drop(self.name, "", where, "missing_audio", rel)
                continue
            source_id = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
            key = make_key(self.name, source_id)
            yield given, group or group_of("", key), Utterance(
                key=key, source=self.name, split="",
                language=self.opts.language, source_id=source_id,
                text="" if unlabelled else f["text"], speaker=speaker,
                gender=f.get("gender", "").strip().lower(), audio=AudioRef(str(audio)),
                extras=self.extras(path=rel), unlabelled=unlabelled)


def _has_text(meta: Path) -> bool:
    """Whether ``meta`` has transcripts: a TSV/CSV header naming a ``text`` column, a JSONL
    (any other name) with at least one row that has a ``"text"`` key. A file that cannot be
    read counts as labelled, so that reading its rows reports the problem as before."""
    try:
        if meta.suffix not in (".tsv", ".csv"):
            for line in meta.read_bytes().split(b"\n"):
                try:
                    rec = json.loads(line)
                except ValueError:  # blank, not JSON or not UTF-8: a drop when read
                    continue
                if isinstance(rec, dict) and "text" in rec:
                    return True
            return False
        with open(meta, "rb") as f:
            first = f.readline().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return True
    if meta.suffix == ".csv":
        header = next(csv.reader([first]), [])
    else:
        header = first.rstrip("\r\n").split("\t")
    return "text" in header
