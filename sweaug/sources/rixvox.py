"""RixVox (``KBLab/rixvox``): Swedish parliament speech, 5,493 h, CC-BY-4.0, speaker-disjoint
splits, segments up to 30 s, ~1.2 TB.

Published layout: ``data/<split>_metadata.parquet`` (one row per segment: ``filename``,
``text``, ``speaker``, ``gender``, ``duration``, ``party``, ``dokid``, ...) and
``data/<split>/<split>_<i>.tar.gz`` (16 kHz wav members named by ``filename``, e.g.
``GR01BOU3/2442210220028601121_anf191_1_25.wav``); splits ``train``/``dev``/``test``.

Streaming: with ``max_hours`` (per split) archives are fetched one at a time, in index order,
and segments are taken in archive order until the budget is met, so a slice never downloads
the whole corpus. The metadata does not say which archive holds a segment, so each archive's
member list is read once (and cached).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

from ..records import AudioRef, Drop, SourceError, Utterance, make_key
from . import Source
from ._common import hub_files, index_archive, require_records

REPO_ID = "KBLab/rixvox"
SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}
_ARCHIVE = re.compile(r"^data/(train|dev|test)/\1_(\d+)\.tar\.gz$")
EXTRAS = ("party", "electoral_district", "birth_year", "debatedate", "dokid", "anforande_nummer",
          "observation_nr", "intressent_id", "speaker_name", "start", "end", "bleu_score")


class RixVox(Source):
    name = "rixvox"
    extras_fields = EXTRAS

    def __init__(self, opts):
        super().__init__(opts)
        if opts.language != "sv":
            raise SourceError(f"rixvox is Swedish only; got --language {opts.language}")
        if opts.max_hours is not None and opts.max_hours <= 0:
            raise SourceError("rixvox: --max-hours must be positive")
        self._unsafe: list[Drop] = []
        self._files: list[str] | None = None

    # -- where files come from: a local copy in the published layout, or the Hub ---------------
    def _repo_files(self) -> list[str]:
        if self._files is None:
            if self.opts.path is not None:
                root = Path(self.opts.path).expanduser()
                if not (root / "data").is_dir():
                    raise SourceError(f"rixvox: no data/ folder under {root}")
                self._files = sorted(str(p.relative_to(root)) for p in (root / "data").rglob("*")
                                     if p.is_file())
            else:
                try:
                    from huggingface_hub import HfApi, constants
                    if constants.HF_HUB_OFFLINE:  # what the local HF cache holds of the repo
                        snap = hub_files(REPO_ID, self.revision(), ["data/*_metadata.parquet"])
                        self._files = sorted(str(p.relative_to(snap))
                                             for p in (snap / "data").rglob("*") if p.is_file())
                    else:
                        self._files = sorted(HfApi().list_repo_files(
                            REPO_ID, repo_type="dataset", revision=self.revision()))
                except Exception as e:
                    raise SourceError(f"rixvox: cannot list {REPO_ID}@{self.revision()} on the Hub: "
                                      f"{type(e).__name__}: {e}. Pass a local copy with "
                                      f"--rixvox-dir.") from None
        return self._files

    def _fetch(self, relpath: str) -> Path:
        if self.opts.path is not None:
            return Path(self.opts.path).expanduser() / relpath
        return hub_files(REPO_ID, self.revision(), [relpath]) / relpath

    def download(self) -> Path:
        """Fetch the metadata of every split (archives are fetched lazily by ``records``)."""
        for name in SPLIT_FILES.values():
            self._fetch(f"data/{name}_metadata.parquet")
        return Path(self.opts.path) if self.opts.path else Path(REPO_ID)

    def release(self) -> str:
        where = self.where()
        hours = f", first {self.opts.max_hours:g} h per split" if self.opts.max_hours else ""
        return f"v1 ({where}{hours})"

    def archive_drops(self) -> list[Drop]:
        return list(self._unsafe)

    def _metadata(self, name: str) -> dict[str, dict]:
        relpath = f"data/{name}_metadata.parquet"
        if relpath not in self._repo_files():
            raise SourceError(f"rixvox: missing split file {relpath}")
        path = self._fetch(relpath)
        try:
            import pyarrow.parquet as pq
            table = pq.read_table(path)
        except Exception as e:
            raise SourceError(f"rixvox: unreadable metadata {path}: {e}") from None
        if "filename" not in table.column_names or "text" not in table.column_names:
            raise SourceError(f"rixvox: {path} has no filename/text columns "
                              f"(columns: {', '.join(table.column_names)})")
        return {row["filename"]: row for row in table.to_pylist() if row.get("filename")}

    def records(self, split: str) -> Iterator[Utterance | Drop]:
        """The split's records; a split file none of whose rows gives a record is an error."""
        yield from require_records(self.name, split, f"data/{SPLIT_FILES[split]}_metadata.parquet and its archives", self._records(split))

    def _records(self, split: str) -> Iterator[Utterance | Drop]:
        name = SPLIT_FILES[split]
        meta = self._metadata(name)
        archives = sorted((int(m.group(2)), f) for f in self._repo_files()
                          if (m := _ARCHIVE.match(f)) and m.group(1) == name)
        if not archives:
            raise SourceError(f"rixvox: no data/{name}/{name}_<i>.tar.gz archives")
        budget = self.opts.max_hours * 3600 if self.opts.max_hours else None
        taken, found, full = 0.0, set(), False
        for _, relpath in archives:
            if full:
                break
            archive = self._fetch(relpath)
            index = index_archive(archive, self.opts.cache_dir)
            self._unsafe += [Drop(self.name, split, f"{archive.name}:{m}", "unsafe_member", why)
                             for m, why in index.unsafe]
            for member in index.members:
                row = meta.get(member)
                if row is None:
                    yield Drop(self.name, split, f"{archive.name}:{member}", "missing_metadata",
                               f"no row in {name}_metadata.parquet")
                    continue
                if member in found:
                    yield Drop(self.name, split, f"{archive.name}:{member}", "duplicate_id", member)
                    continue
                duration = float(row["duration"]) if row.get("duration") is not None else None
                if budget is not None and taken + (duration or 0.0) > budget:
                    full = True
                    break
                found.add(member)
                taken += duration or 0.0
                yield self._utterance(split, archive, member, row, duration)
        if budget is None:
            for filename in sorted(set(meta) - found):
                yield Drop(self.name, split, f"{name}_metadata.parquet:{filename}", "missing_audio",
                           "in no archive")

    def _utterance(self, split, archive, member, row, duration) -> Utterance:
        source_id = member.rsplit(".", 1)[0]
        return Utterance(
            key=make_key(self.name, source_id), source=self.name, split=split, language="sv",
            source_id=source_id, text=row.get("text") or "",
            speaker=str(row.get("intressent_id") or row.get("speaker") or ""),
            gender={"male": "male", "female": "female"}.get(str(row.get("gender") or "").lower(),
                                                            "other" if row.get("gender") else ""),
            audio=AudioRef(str(archive), member), duration=duration,
            extras=self.extras(**{k: row.get(k) for k in EXTRAS if k != "speaker_name"},
                               speaker_name=row.get("speaker")))
