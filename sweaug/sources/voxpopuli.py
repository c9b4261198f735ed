"""VoxPopuli transcribed speech (``facebook/voxpopuli``), European Parliament.

Layout: ``data/<lang>/asr_{train,dev,test}.tsv`` (``id raw_text normalized_text speaker_id
split gender is_gold_transcript accent``) and ``data/<lang>/<split>/<split>_part_<n>.tar.gz``
(wav members named by id). VoxPopuli has transcriptions for 16 languages and none for
Swedish: asking for ``sv`` is an error that points to RixVox, never an empty build.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..records import AudioRef, Drop, SourceError, Utterance, make_key
from . import Source
from ._common import hub_files, index_archive, read_tsv, require_records

REPO_ID = "facebook/voxpopuli"
ASR_LANGUAGES = ("en", "de", "fr", "es", "pl", "it", "ro", "hu", "cs", "nl", "fi", "hr", "sk",
                 "sl", "et", "lt")
SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}


class VoxPopuli(Source):
    name = "voxpopuli"
    extras_fields = ("voxpopuli_normalized", "is_gold_transcript", "accent")

    def __init__(self, opts):
        super().__init__(opts)
        if opts.language not in ASR_LANGUAGES:
            hint = (" For Swedish parliament speech use --sources rixvox (KBLab/rixvox)."
                    if opts.language == "sv" else "")
            raise SourceError(f"voxpopuli has no transcribed speech for language "
                              f"{opts.language!r} (it has: {' '.join(ASR_LANGUAGES)}).{hint}")
        self._root: Path | None = None
        self._unsafe: list[Drop] = []

    def download(self) -> Path:
        if self._root is None:
            if self.opts.path is not None:
                self._root = Path(self.opts.path).expanduser()
                if not self._root.is_dir():
                    raise SourceError(f"voxpopuli: {self._root} is not a folder")
            else:
                lang = self.opts.language
                self._root = hub_files(REPO_ID, self.revision(),
                                       [f"data/{lang}/asr_*.tsv", f"data/{lang}/*/*.tar.gz"])
        return self._root

    def release(self) -> str:
        return f"{self.opts.language} ({self.where()})"

    def archive_drops(self) -> list[Drop]:
        return list(self._unsafe)

    def records(self, split: str) -> Iterator[Utterance | Drop]:
        """The split's records; a split file none of whose rows gives a record is an error."""
        yield from require_records(self.name, split, str(self.download() / "data" / self.opts.language / f"asr_{SPLIT_FILES[split]}.tsv"), self._records(split))

    def _records(self, split: str) -> Iterator[Utterance | Drop]:
        d = self.download() / "data" / self.opts.language
        name = SPLIT_FILES[split]
        tsv = d / f"asr_{name}.tsv"
        if not tsv.exists():
            raise SourceError(f"voxpopuli: missing split file {tsv}")
        archives = sorted((d / name).glob(f"{name}_part_*.tar.gz"),
                          key=lambda p: int(p.name.split("_part_")[1].split(".")[0]))
        if not archives:
            raise SourceError(f"voxpopuli: no {name}_part_*.tar.gz archives in {d / name}")
        members: dict[str, tuple[Path, str]] = {}
        for archive in archives:
            index = index_archive(archive, self.opts.cache_dir)
            self._unsafe += [Drop(self.name, split, f"{archive.name}:{m}", "unsafe_member", why)
                             for m, why in index.unsafe]
            for m in index.members:
                members.setdefault(os.path.splitext(os.path.basename(m))[0], (archive, m))
        seen: set[str] = set()
        rank = {str(a): i for i, a in enumerate(archives)}
        found: list[tuple[int, int, Utterance]] = []
        for row in read_tsv(tsv, self.name, split, required=("id", "raw_text", "speaker_id")):
            if isinstance(row, Drop):
                yield row
                continue
            f = row.fields
            where, uid = f"{tsv.name}:{row.line}", f["id"].strip()
            if not uid:
                yield Drop(self.name, split, where, "missing_fields", "empty id")
                continue
            if uid in seen:
                yield Drop(self.name, split, where, "duplicate_id", uid)
                continue
            seen.add(uid)
            if uid not in members:
                yield Drop(self.name, split, where, "missing_audio", f"{uid}.wav")
                continue
            archive, member = members[uid]
            found.append((rank[str(archive)], row.line, Utterance(
                key=make_key(self.name, uid), source=self.name, split=split,
                language=self.opts.language, source_id=uid,
                text=f["raw_text"] or f.get("normalized_text", ""), speaker=f["speaker_id"],
                gender={"male": "male", "female": "female"}.get(f.get("gender", "").lower(),
                                                                "other" if f.get("gender") else ""),
                audio=AudioRef(str(archive), member),
                extras=self.extras(voxpopuli_normalized=f.get("normalized_text"),
                                   is_gold_transcript=f.get("is_gold_transcript"),
                                   accent=f.get("accent")))))
        # archive by archive (TSV order within each), so that each archive is read in one pass
        for _, _, u in sorted(found, key=lambda t: t[:2]):
            yield u
