"""FLEURS (``google/fleurs``), e.g. sv_se.

``google/fleurs`` is a loading script, which ``datasets`` >= 4 refuses (and which broke
Lhotse's recipe, lhotse#1535), so its raw files are fetched with huggingface_hub at a pinned
revision: ``data/<config>/{train,dev,test}.tsv`` and ``data/<config>/audio/<split>.tar.gz``.
Quirks: the TSVs have no header and 7 fields (id, file name, raw transcription, normalized
transcription, a character-level field, num_samples, gender); ``id`` repeats (several readings
of one sentence, each its own sample, keyed by file name); there is no speaker id.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

from ..records import AudioRef, Drop, SourceError, Utterance, make_key
from . import Source
from ._common import hub_files, index_archive, read_tsv, require_records

REPO_ID = "google/fleurs"
# The pinned revision lives in manifests/fleurs.yaml; --fleurs-revision overrides it.
CONFIGS = {"sv": "sv_se", "fi": "fi_fi", "da": "da_dk", "nb": "nb_no", "no": "nb_no",
           "de": "de_de", "en": "en_us", "fr": "fr_fr", "es": "es_419", "nl": "nl_nl",
           "is": "is_is", "et": "et_ee", "pl": "pl_pl", "it": "it_it"}
COLUMNS = ["id", "file_name", "raw_transcription", "transcription", "characters",
           "num_samples", "gender"]
SPLIT_FILES = {"train": "train", "validation": "dev", "test": "test"}
SAMPLE_RATE = 16_000


class Fleurs(Source):
    name = "fleurs"
    extras_fields = ("sentence_id", "fleurs_transcription")

    def __init__(self, opts):
        super().__init__(opts)
        self._root: Path | None = None
        self._unsafe: list[Drop] = []
        self._seen: dict[str, set[str]] = {}

    @property
    def config(self) -> str:
        cfg = self.opts.options.get("config") or CONFIGS.get(self.opts.language)
        if not cfg:
            raise SourceError(f"fleurs: no FLEURS config known for language "
                              f"{self.opts.language!r}; pass it explicitly (e.g. sv_se)")
        return cfg

    def download(self) -> Path:
        if self._root is None:
            if self.opts.path is not None:
                root = Path(self.opts.path).expanduser()
                if not root.is_dir():
                    raise SourceError(f"fleurs: {root} is not a folder")
            else:
                cfg = self.config
                root = hub_files(REPO_ID, self.revision(),
                                 [f"data/{cfg}/*.tsv", f"data/{cfg}/audio/*.tar.gz"])
            self._root = root
        return self._root

    def release(self) -> str:
        return f"{self.config} ({self.where()})"

    def _dir(self) -> Path:
        d = self.download() / "data" / self.config
        if not d.is_dir():
            raise SourceError(f"fleurs: no data/{self.config} folder under {self.download()}")
        return d

    def archive_drops(self) -> list[Drop]:
        return list(self._unsafe)

    def records(self, split: str) -> Iterator[Utterance | Drop]:
        """The split's records; a split file none of whose rows gives a record is an error."""
        yield from require_records(self.name, split, f"{self._dir() / SPLIT_FILES[split]}.tsv", self._records(split))

    def _records(self, split: str) -> Iterator[Utterance | Drop]:
        d = self._dir()
        name = SPLIT_FILES[split]
        tsv, archive = d / f"{name}.tsv", d / "audio" / f"{name}.tar.gz"
        for f in (tsv, archive):
            if not f.exists():
                raise SourceError(f"fleurs: missing split file {f}")
        index = index_archive(archive, self.opts.cache_dir)
        self._unsafe += [Drop(self.name, split, f"{archive.name}:{m}", "unsafe_member", why)
                         for m, why in index.unsafe]
        by_name = {os.path.basename(m): m for m in index.members}
        seen = self._seen.setdefault(split, set())
        seen.clear()
        for row in read_tsv(tsv, self.name, split, columns=COLUMNS):
            if isinstance(row, Drop):
                yield row
                continue
            f = row.fields
            where = f"{tsv.name}:{row.line}"
            file_name = f["file_name"].strip()
            if not file_name:
                yield Drop(self.name, split, where, "missing_fields", "empty file name")
                continue
            if file_name in seen:
                yield Drop(self.name, split, where, "duplicate_id", file_name)
                continue
            seen.add(file_name)
            member = by_name.get(file_name)
            if member is None:
                yield Drop(self.name, split, where, "missing_audio", f"{archive.name}:{file_name}")
                continue
            n = f["num_samples"].strip()
            source_id = os.path.splitext(file_name)[0]
            yield Utterance(
                key=make_key(self.name, source_id), source=self.name, split=split,
                language=self.opts.language, source_id=source_id, text=f["raw_transcription"],
                speaker="", gender={"MALE": "male", "FEMALE": "female"}.get(
                    f["gender"].strip().upper(), "other" if f["gender"].strip() else ""),
                audio=AudioRef(str(archive), member),
                duration=int(n) / SAMPLE_RATE if n.isdigit() else None,
                extras=self.extras(sentence_id=f["id"], fleurs_transcription=f["transcription"]))
