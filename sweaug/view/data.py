"""What every page kind reads: manifests, shard members (only the ones asked for), seeded
samples, and the audio of a row (a base64 data URI, a file next to the page, or nothing)."""
from __future__ import annotations

import base64
import json
import random
import tarfile
from pathlib import Path
from typing import Iterable, Iterator
from urllib.parse import quote

from ..records import ConfigError

CORPUS_FORMAT = "sweaug-corpus/1"
AUGMENTED_FORMAT = "sweaug-augmented/1"
WINDOWS_FORMAT = "sweaug-windows/1"  # = sweaug.windows.stage.FORMAT (not imported: light)
LABELLED_FORMAT = "sweaug-labelled/1"  # = sweaug.label.stage.FORMAT
AUDIO_MODES = ("embed", "files", "none")


class ViewError(ConfigError):
    """Input ``sweaug view`` cannot show: the message names the folder or file and what to do."""


def load_json(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ViewError(f"{path} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ViewError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ViewError(f"{path} is not a JSON object")
    return data


def _members(shard: Path) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo, str, str]]:
    """``(tar, member, key, extension)`` of one shard, in order; a missing or unreadable shard
    is a :class:`ViewError` naming it."""
    if not shard.is_file():
        raise ViewError(f"shard {shard} is missing (listed in the manifest)")
    try:
        with tarfile.open(shard, "r") as tar:
            for m in tar:
                if m.isfile():
                    key, _, ext = m.name.partition(".")
                    yield tar, m, key, ext
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ViewError(f"shard {shard} cannot be read: {e}") from None


def scan_meta(shards: Iterable[Path]) -> Iterator[dict]:
    """Every sample's JSON metadata, in shard order; the audio is skipped, not read."""
    for shard in shards:
        for tar, m, key, ext in _members(Path(shard)):
            if ext != "json":
                continue
            try:
                meta = json.loads(tar.extractfile(m).read())
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise ViewError(f"shard {shard}: {m.name} is not valid JSON: {e}") from None
            meta.setdefault("key", key)
            yield meta


def read_samples(shards: Iterable[Path], keys: set[str], audio: bool = True
                 ) -> dict[str, dict]:
    """``{key: {"json": dict, "flac": bytes}}`` of ``keys`` from ``shards``: only those members
    are read (the FLAC only when ``audio``)."""
    found: dict[str, dict] = {}
    want = set(keys)
    exts = ("json", "flac") if audio else ("json",)
    for shard in shards:
        if all(k in found and len(found[k]) == len(exts) for k in want):
            break
        for tar, m, key, ext in _members(Path(shard)):
            if key in want and ext in exts:
                data = tar.extractfile(m).read()
                if ext == "json":
                    try:
                        data = json.loads(data)
                    except (json.JSONDecodeError, UnicodeDecodeError) as e:
                        raise ViewError(f"shard {shard}: {m.name} is not valid JSON: {e}") \
                            from None
                found.setdefault(key, {})[ext] = data
    return found


def pick(n_total: int, n: int, seed: int, *scope: str) -> list[int]:
    """``n`` sorted indices out of ``n_total``, drawn with a generator seeded by the seed and
    the scope (e.g. source and split): the same everywhere, for any Python hash seed."""
    rng = random.Random("/".join([str(seed), *scope]))
    return sorted(rng.sample(range(n_total), min(n, n_total)))


def cps(meta: dict) -> float | None:
    """Characters of the normalized text (no spaces) per second, as the build's filter."""
    d = meta.get("duration") or 0
    if d <= 0:
        return None
    return sum(1 for ch in str(meta.get("text_normalized", "")) if not ch.isspace()) / d


def shard_set(corpus: Path, name: str) -> list[Path]:
    """The shards of a ``<folder>/<split>`` set of a corpus root (a source of the build, or an
    augmented folder inside the root with its own manifest), as ``sweaug ablate`` resolves it."""
    folder, _, split = name.partition("/")
    top = load_json(corpus / "manifest.json")
    if folder in top.get("sources", {}):
        base, info = corpus, top["sources"][folder]
    elif (corpus / folder / "manifest.json").exists():
        m = load_json(corpus / folder / "manifest.json")
        if folder not in m.get("sources", {}):
            raise ViewError(f"{corpus / folder / 'manifest.json'} does not list {folder!r}")
        base, info = corpus / folder, m["sources"][folder]
    else:
        raise ViewError(f"{corpus} has no shard set {name!r} (no source {folder!r})")
    if split not in info.get("splits", {}):
        raise ViewError(f"{corpus}: {folder} has no split {split!r}")
    return [base / s["path"] for s in info["splits"][split]["shards"]]


class AudioSink:
    """Where a row's audio goes: ``embed`` (a ``data:audio/flac;base64`` URI in the page),
    ``files`` (``<page>_audio/<key>.flac`` next to the page, referenced relatively) or ``none``."""

    def __init__(self, mode: str, page: Path):
        if mode not in AUDIO_MODES:
            raise ViewError(f"--audio must be one of {', '.join(AUDIO_MODES)}, not {mode!r}")
        self.mode, self.page = mode, Path(page)
        self.folder = self.page.with_name(self.page.stem + "_audio")
        self.count, self.bytes = 0, 0
        self._written: set[str] = set()

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def src(self, name: str, flac: bytes | None) -> str | None:
        """The ``src`` of an ``<audio>`` element for ``flac`` (None when there is no audio)."""
        if flac is None or not self.enabled:
            return None
        self.count += 1
        self.bytes += len(flac)
        if self.mode == "embed":
            return "data:audio/flac;base64," + base64.b64encode(flac).decode("ascii")
        from ..files import atomic_write_bytes

        fname = f"{name}.flac"
        if fname not in self._written:
            atomic_write_bytes(self.folder / fname, flac)
            self._written.add(fname)
        return f"{quote(self.folder.name)}/{quote(fname)}"

    def finish(self) -> None:
        """Remove audio files of an earlier render that this page no longer references."""
        if self.mode == "files" and self.folder.is_dir():
            for f in self.folder.glob("*.flac"):
                if f.name not in self._written:
                    f.unlink()
