"""Deterministic, atomic WebDataset tar shards.

A sample is ``<key>.flac`` + ``<key>.json``. Tar headers carry fixed mtime/uid/gid/names
and mode, so the bytes depend only on the samples and their order. A shard is written under
a temporary name and renamed only once complete, so a killed build never leaves a file that
looks like a finished shard.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

SHARD_SAMPLES = 1000  # ~100 MB of 5 s clips; also the partition size for loose files
SHARD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    sha256: str
    samples: int
    bytes: int


def sample_json(meta: dict) -> bytes:
    """The canonical JSON bytes of a sample's metadata (sorted keys, UTF-8)."""
    return json.dumps(meta, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()


class _HashingFile(io.RawIOBase):
    """A write-only file that hashes and counts what passes through it."""

    def __init__(self, f):
        self._f, self.sha, self.size = f, hashlib.sha256(), 0

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.size

    def write(self, b) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self._f.write(b)


def _member(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, unique to this
    writer (``mkstemp``: not the pid alone, which two machines sharing a folder can have), then
    rename; the temporary file is removed if the write fails."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ShardWriter:
    """Writes samples into shards named by ``name_of(index)``, each bounded by sample count
    and bytes; ``close()`` returns what was written."""

    def __init__(self, name_of: Callable[[int], Path], max_samples: int = SHARD_SAMPLES,
                 max_bytes: int = SHARD_BYTES):
        if max_samples < 1 or max_bytes < 4096:
            raise ValueError("a shard must hold at least one sample and 4 KiB")
        self._name_of, self.max_samples, self.max_bytes = name_of, max_samples, max_bytes
        self._tar = self._raw = self._hash = self._path = self._tmp = None
        self._count = 0
        self.written: list[ShardInfo] = []

    def write(self, key: str, files: list[tuple[str, bytes]]) -> None:
        """Add one sample: ``files`` is ``[(extension, bytes), ...]`` in a fixed order."""
        if "." in key or "/" in key:
            raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
        size = sum(512 + -(-len(b) // 512) * 512 for _, b in files)
        if self._tar is not None and (self._count >= self.max_samples
                                      or self._hash.size + size > self.max_bytes):
            self._finish()
        if self._tar is None:
            self._open()
        for ext, data in files:
            self._tar.addfile(_member(f"{key}.{ext}", len(data)), io.BytesIO(data))
        self._count += 1

    def _open(self) -> None:
        self._path = Path(self._name_of(len(self.written)))
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self._path.with_name(f".{self._path.name}.tmp{os.getpid()}")
        self._raw = open(self._tmp, "wb")
        self._hash = _HashingFile(self._raw)
        self._tar = tarfile.open(fileobj=self._hash, mode="w", format=tarfile.GNU_FORMAT)
        self._count = 0

    def _finish(self) -> None:
        self._tar.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()
        os.replace(self._tmp, self._path)
        self.written.append(ShardInfo(self._path, self._hash.sha.hexdigest(), self._count,
                                      self._hash.size))
        self._tar = None

    def close(self) -> list[ShardInfo]:
        if self._tar is not None:
            self._finish()
        return self.written

    def abort(self) -> None:
        """Drop the shard being written (its temporary file), keep finished ones."""
        if self._tar is not None:
            self._raw.close()
            self._tmp.unlink(missing_ok=True)
            self._tar = None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def iter_samples(path: Path, only: tuple[str, ...] | None = None
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {extension: bytes})`` from one shard, in order; with ``only`` (e.g.
    ``("json",)``) just those members are read, the others' bytes are skipped."""
    current, files = None, {}
    with tarfile.open(path, "r") as tar:
        for m in tar:
            key, _, ext = m.name.partition(".")
            if current is not None and key != current:
                yield current, files
                files = {}
            current = key
            if only is None or ext in only:
                files[ext] = tar.extractfile(m).read()
    if current is not None:
        yield current, files
