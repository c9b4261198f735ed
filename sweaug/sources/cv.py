"""Common Voice (Mozilla Data Collective releases), e.g. sv-SE.

Accepts the release tarball ``cv-corpus-<ver>-<date>-<locale>.tar.gz`` (extracted once,
member by member, into the cache) or an extracted folder (the ``<locale>/`` folder itself or
any parent of it). Quirks handled here:

* TSVs are unquoted: read with ``csv.QUOTE_NONE`` (sentences contain bare ``"``).
* Columns are found by header name; they differ by release (``accent`` -> ``accents``,
  ``variant`` since v13, ``sentence_id``/``sentence_domain`` since v17).
* Clips are mp3 at 48 kHz (older releases: 44.1 kHz, a few stereo): the rate is never assumed.
* ``clip_durations.tsv`` (when present) gives each clip's length, used to detect truncation;
  releases 14-16 have ``times.txt`` instead (or besides): one line per clip, the clip's path
  in backticks, `` = `` and its length in ms, e.g. (common-voice issue 4252)
  "`cv-corpus-14.0-delta-2023-06-23/ug/clips/common_voice_ug_34452661.mp3` = 6192"; the
  path's release part can name another release, so clips are matched by file name. It is
  read when there is no ``clip_durations.tsv``.
* ``gender``: male/female in both vocabularies; other, intersex, transgender, non-binary are
  "other"; ``do_not_wish_to_say``, ``NA``, empty or anything unknown is "" (unknown).
* A split file whose rows give no record at all (every clip missing), or a release the
  catalog lists whose split file has no rows, is an error, not an empty split.
* ``extra=("validated",)`` adds the clips of ``validated.tsv`` that are in none of
  train/dev/test (matched by ``path``) to the training split; they pass the leakage guard,
  which is where test sentences re-read by other speakers and test speakers' other clips are.

sweaug never re-hosts Common Voice; ``download()`` uses MDC's ``datacollective`` SDK.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

from ..records import AudioRef, Drop, SourceError, Utterance, make_key
from . import Source
from ._common import Row, extract_archive, read_tsv, require_records

LOCALES = {"sv": "sv-SE", "nn": "nn-NO", "nb": "nb-NO", "es": "es-ES", "pt": "pt", "zh": "zh-CN"}
SPLIT_FILES = {"train": "train.tsv", "validation": "dev.tsv", "test": "test.tsv"}
_RELEASE = re.compile(r"cv-corpus-(\d+(?:\.\d+)?)-(\d{4}-\d{2}-\d{2})")
_GENDERS = {"male": "male", "male_masculine": "male", "female": "female",
            "female_feminine": "female", "other": "other", "intersex": "other",
            "transgender": "other", "non-binary": "other", "non_binary": "other"}
_TIMES_LINE = re.compile(r"^`([^`]+)`\s*=\s*(\d+)\s*$")  # times.txt: `<path>` = <ms>


def locale_for(language: str) -> str:
    return LOCALES.get(language, language)


def _gender(value: str) -> str:
    """Known gender values; ``do_not_wish_to_say``, ``NA`` and anything unknown are ''."""
    return _GENDERS.get(value.strip().lower(), "")


class CommonVoice(Source):
    name = "cv"
    extras_fields = ("age", "accents", "variant", "locale", "segment", "sentence_id",
                     "sentence_domain", "up_votes", "down_votes", "origin")

    def __init__(self, opts):
        super().__init__(opts)
        self._root: Path | None = None
        self._drops: list[Drop] = []
        self._durations: dict[str, float] | None = None
        self._seen: dict[str, set[str]] = {}  # split -> clip paths (a path is one sample)
        self._rows_read: dict[str, int] = {}  # split -> data rows in its split TSV

    # -- download / locate ---------------------------------------------------------------------
    def download(self) -> Path:
        if self._root is not None:
            return self._root
        path = self.opts.path
        if path is None:
            raise SourceError(
                "cv: Common Voice is distributed by Mozilla Data Collective and is not on the Hub: "
                "download the release tarball (or run `sweaug download cv --dataset-id ID` with "
                "MDC_API_KEY set) and pass it with --cv-dir")
        path = Path(path).expanduser()
        if not path.exists():
            raise SourceError(f"cv: {path} does not exist")
        if path.is_file():
            dest = Path(self.opts.cache_dir) / "cv" / path.name.split(".tar")[0]
            self._drops = extract_archive(path, dest, self.name)
            path = dest
        self._root = self._locale_dir(path)
        return self._root

    def _locale_dir(self, path: Path) -> Path:
        locale = locale_for(self.opts.language)
        if (path / "train.tsv").exists() or path.name == locale:
            return path
        found = sorted(p for p in path.glob(f"**/{locale}") if p.is_dir())
        if not found:
            raise SourceError(f"cv: no '{locale}' folder (with train.tsv) under {path}")
        return found[-1]

    def release(self) -> str:
        root = self.download()
        for part in (root.parent.name, *(p.name for p in root.parents)):
            m = _RELEASE.search(part)
            if m:
                return f"{m.group(1)} ({m.group(2)})"
        if self.opts.path:
            m = _RELEASE.search(Path(self.opts.path).name)
            if m:
                return f"{m.group(1)} ({m.group(2)})"
        return "unknown"

    def archive_drops(self) -> list[Drop]:
        self.download()
        return list(self._drops)

    def _expected(self) -> dict:
        """The catalog's rows per split for this release (sv-SE), or {}."""
        from .catalog import load

        m = _RELEASE.search(str(self.download()))
        if not m and self.opts.path:
            m = _RELEASE.search(Path(self.opts.path).name)
        expected = next((r["expected"] for r in load("cv").get("releases", [])
                         if m and str(r["version"]) == m.group(1)), None)
        if expected is None or locale_for(self.opts.language) != "sv-SE":
            return {}
        return expected

    def count_check(self) -> dict:
        """Rows read per split TSV vs the counts the catalog lists for this release."""
        expected = self._expected()
        return {split: {"expected": expected[split], "read": n}
                for split, n in self._rows_read.items() if split in expected}

    # -- records -------------------------------------------------------------------------------
    def _clip_durations(self) -> dict[str, float]:
        if self._durations is None:
            self._durations = {}
            f = self.download() / "clip_durations.tsv"
            times = self.download() / "times.txt"
            if f.exists():
                for row in read_tsv(f, self.name, "all"):
                    if isinstance(row, Row):
                        ms = row.fields.get("duration[ms]", "")
                        if ms.isdigit():
                            self._durations[row.fields.get("clip", "")] = int(ms) / 1000
            elif times.exists():  # releases 14-16
                with open(times, "rb") as fh:
                    for raw in fh:
                        m = _TIMES_LINE.match(raw.decode("utf-8", "replace").strip())
                        if m:
                            clip = m.group(1).rsplit("/", 1)[-1]
                            self._durations[clip] = int(m.group(2)) / 1000
        return self._durations

    def _split_paths(self) -> set[str]:
        paths: set[str] = set()
        for fname in SPLIT_FILES.values():
            for row in read_tsv(self.download() / fname, self.name, "all", required=("path",)):
                if isinstance(row, Row):
                    paths.add(row.fields["path"])
        return paths

    def records(self, split: str) -> Iterator[Utterance | Drop]:
        root = self.download()
        self._seen[split] = set()
        tsv = root / SPLIT_FILES[split]
        yield from require_records(self.name, split, str(tsv),
                                   self._rows(tsv, split, origin=SPLIT_FILES[split]))
        expected = self._expected().get(split)
        if expected and not self._rows_read.get(split):
            raise SourceError(f"cv: {tsv} has no data rows; this release lists {expected} "
                              f"for {split}")
        if split == "train" and "validated" in self.opts.extra:
            skip = self._split_paths()
            yield from self._rows(root / "validated.tsv", "train", origin="validated.tsv",
                                  exclude=skip)

    def _rows(self, tsv: Path, split: str, origin: str, exclude: set[str] = frozenset()
              ) -> Iterator[Utterance | Drop]:
        if not tsv.exists():
            raise SourceError(f"cv: missing split file {tsv}")
        clips = tsv.parent / "clips"
        durations = self._clip_durations()
        for row in read_tsv(tsv, self.name, split, required=("client_id", "path", "sentence")):
            if origin == SPLIT_FILES.get(split):
                self._rows_read[split] = self._rows_read.get(split, 0) + 1
            if isinstance(row, Drop):
                yield row
                continue
            f = row.fields
            clip = f["path"].strip()
            if clip in exclude:
                continue
            where = f"{tsv.name}:{row.line}"
            if not clip or "/" in clip or clip in (".", ".."):
                yield Drop(self.name, split, where, "missing_fields", f"bad path {clip!r}")
                continue
            if any(clip in seen for seen in self._seen.values()):
                yield Drop(self.name, split, where, "duplicate_id", clip)
                continue
            self._seen[split].add(clip)
            audio = clips / clip
            if not audio.is_file():
                yield Drop(self.name, split, where, "missing_audio", f"clips/{clip}")
                continue
            source_id = os.path.splitext(clip)[0]
            yield Utterance(
                key=make_key(self.name, source_id), source=self.name, split=split,
                language=self.opts.language, source_id=source_id, text=f["sentence"],
                speaker=f["client_id"], gender=_gender(f.get("gender", "")),
                audio=AudioRef(str(audio)), duration=durations.get(clip),
                extras=self.extras(age=f.get("age"), accents=f.get("accents", f.get("accent")),
                                   variant=f.get("variant"), locale=f.get("locale"),
                                   segment=f.get("segment"), sentence_id=f.get("sentence_id"),
                                   sentence_domain=f.get("sentence_domain"),
                                   up_votes=f.get("up_votes"), down_votes=f.get("down_votes"),
                                   origin=origin))


def download(dataset_id: str, dest: Path | None = None) -> Path:
    """Fetch a Common Voice release from Mozilla Data Collective (needs ``MDC_API_KEY`` and
    ``pip install datacollective``); returns the downloaded tarball's path."""
    if not os.environ.get("MDC_API_KEY"):
        raise SourceError("cv: set MDC_API_KEY (your Mozilla Data Collective API key) to download; "
                          "sweaug never re-hosts Common Voice")
    try:
        from datacollective import download_dataset
    except ImportError:
        raise SourceError("cv: `pip install datacollective` (Mozilla Data Collective's SDK) "
                          "to download Common Voice") from None
    if dest is not None:
        os.environ.setdefault("MDC_DOWNLOAD_PATH", str(dest))
    return Path(download_dataset(dataset_id))
