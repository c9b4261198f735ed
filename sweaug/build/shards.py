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
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Mapping
from zlib import error as zlib_error

from ..files import atomic_write_bytes, sha256_file  # noqa: F401  (shards' callers import them here)
from ..records import SourceError

SHARD_SAMPLES = 1000  # ~100 MB of 5 s clips; also the partition size for loose files
SHARD_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class ShardInfo:
    path: Path
    sha256: str
    samples: int
    bytes: int


def extras_json(extras: Mapping[str, str]) -> str:
    """A sample's ``extras`` (the source's own fields) as one JSON string, sorted keys, UTF-8.

    One string column, not a struct: each source has its own extras keys, and a loader that
    reads shards of several sources at once (``load_dataset("webdataset", ...)`` keeps the
    schema of the first samples it sees) would silently drop the keys of all but the first."""
    return json.dumps(dict(extras), ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def sample_json(meta: dict) -> bytes:
    """The canonical JSON bytes of a sample's metadata (sorted keys, UTF-8). An ``extras``
    mapping (a corpus built before extras were a string, read back and written again, e.g. by
    ``sweaug augment``) is written as :func:`extras_json`."""
    if isinstance(meta.get("extras"), Mapping):
        meta = {**meta, "extras": extras_json(meta["extras"])}
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


class ShardReadError(SourceError, tarfile.ReadError):
    """A shard that cannot be read (truncated, not a tar, a sample without a member it needs).
    The message names the shard and the member; the CLI prints it without a traceback. Also a
    ``tarfile.ReadError``, for callers that catch that.

    torch re-raises an exception from a DataLoader worker as ``type(e)(<the worker's traceback
    text>)``: such a message is cut back to the original one, with where it happened."""

    def __init__(self, msg: str = ""):
        msg = str(msg)
        if msg.startswith("Caught ") and "Original Traceback" in msg:
            where = msg.split("\n", 1)[0][len("Caught "):].rstrip(".")
            last = [line for line in msg.splitlines() if line.strip()][-1]
            original = last.split(f"{type(self).__name__}: ", 1)[-1]
            msg = f"{original} ({where.replace(type(self).__name__ + ' ', '', 1)})"
        super().__init__(msg)


def read_error(path, where: str, e: BaseException) -> ShardReadError:
    """The :class:`ShardReadError` of a tar that failed (``e``) ``where`` (e.g. "reading member
    'k.flac'", "after member 'k.json'")."""
    detail = " ".join(str(e).split()) or "no detail"
    return ShardReadError(f"{path}: unreadable shard ({type(e).__name__}: {detail}; {where}): "
                          f"truncated or corrupt, rebuild it")


def check_end(tar: tarfile.TarFile, path, where: str) -> None:
    """After iterating ``tar`` (opened from ``path``): refuse one that stopped without an
    end-of-archive block — cut inside or right before a member header, which ``tarfile`` takes
    for the end and so would silently yield fewer samples."""
    size = os.path.getsize(path)
    if size - tar.offset < tarfile.BLOCKSIZE:
        raise ShardReadError(f"{path}: truncated shard (it ends {where} without the "
                             f"end-of-archive block, {size} bytes): rebuild it")


def iter_samples(path: Path, only: tuple[str, ...] | None = None
                 ) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Yield ``(key, {extension: bytes})`` from one shard, in order; with ``only`` (e.g.
    ``("json",)``) just those members are read, the others' bytes are skipped. A truncated or
    corrupt tar (:func:`check_end` too) raises :class:`ShardReadError` naming the shard and
    the member."""
    current, files, where = None, {}, "at its first member"
    try:
        with tarfile.open(path, "r") as tar:
            for m in tar:
                key, _, ext = m.name.partition(".")
                if current is not None and key != current:
                    yield current, files
                    files = {}
                current = key
                if only is None or ext in only:
                    where = f"reading member {m.name!r}"
                    files[ext] = tar.extractfile(m).read()
                where = f"after member {m.name!r}"
            check_end(tar, path, where)
    except (tarfile.TarError, EOFError, zlib_error) as e:
        if isinstance(e, ShardReadError):
            raise
        raise read_error(path, where, e) from None
    if current is not None:
        yield current, files
