"""Helpers every corpus module shares: quirk-tolerant TSV reading, safe tar archives, Hub files."""
from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import json
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Iterator

from ..records import Drop, SourceError

csv.field_size_limit(1 << 24)


@dataclass
class Row:
    line: int
    fields: dict[str, str]


def read_tsv(path: Path, source: str, split: str, columns: list[str] | None = None,
             required: tuple[str, ...] = ()) -> Iterator[Row | Drop]:
    """Rows of an unquoted TSV (``csv.QUOTE_NONE``: bare ``"`` is text, not quoting).

    With ``columns=None`` the first line is the header and columns are found by name; a
    missing ``required`` column stops the source (SourceError naming the file). Each line is
    decoded on its own, so one non-UTF-8 row is one counted drop, not a failed file; a row
    with fewer fields than the header is dropped as ``missing_fields``; a row with more
    fields (a tab inside a field) or a carriage return inside a field is dropped as
    ``malformed_row``: a row is never shifted into the wrong columns.
    """
    try:
        f = open(path, "rb")
    except OSError as e:
        raise SourceError(f"{source}: cannot read {path}: {e.strerror or e}") from None
    with f:  # streamed line by line: memory stays flat however long the file
        yield from _rows(f, path, source, split, columns, required)


def _rows(f, path, source, split, columns, required) -> Iterator[Row | Drop]:
    line_no = 0
    if columns is None:
        first = f.readline()
        line_no = 1
        try:
            header_line = first.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError:
            raise SourceError(f"{source}: unreadable header in {path}") from None
        header = header_line.split("\t")
        if not header_line or len(set(header)) != len(header):
            raise SourceError(f"{source}: unreadable header in {path}: {header_line[:200]!r}")
        missing = [c for c in required if c not in header]
        if missing:
            raise SourceError(f"{source}: {path} has no column {', '.join(missing)} "
                              f"(header: {' '.join(header)})")
    else:
        header = columns
    for raw_line in f:
        line_no += 1
        b = raw_line.rstrip(b"\r\n")
        if not b.strip():
            continue
        where = f"{path.name}:{line_no}"
        try:
            text = b.decode("utf-8")
        except UnicodeDecodeError as e:
            yield Drop(source, split, where, "non_utf8_text", str(e)[:120])
            continue
        if "\r" in text:  # a lone CR: not a line break in the binary stream, but bad text
            yield Drop(source, split, where, "malformed_row", "carriage return inside a field")
            continue
        values = text.split("\t")  # unquoted TSV (QUOTE_NONE): a tab always separates fields
        if len(values) < len(header):
            yield Drop(source, split, where, "missing_fields",
                       f"{len(values)} of {len(header)} fields")
            continue
        if len(values) > len(header):
            yield Drop(source, split, where, "malformed_row",
                       f"{len(values)} fields, the header has {len(header)} (a tab inside a field?)")
            continue
        yield Row(line_no, dict(zip(header, values)))


def require_records(source: str, split: str, what: str, items: Iterator) -> Iterator:
    """Pass ``items`` (records and drops of one split file) through; a split file with data
    rows of which not one gave a record (every clip missing, say: an incomplete download or
    extraction) is a SourceError naming it and the drop reasons, never an empty split."""
    n, reasons = 0, Counter()
    for item in items:
        if isinstance(item, Drop):
            reasons[item.reason] += 1
        else:
            n += 1
        yield item
    if n == 0 and reasons:
        counts = ", ".join(f"{r} {c}" for r, c in sorted(reasons.items()))
        raise SourceError(f"{source}: {split}: none of the {sum(reasons.values())} rows of {what} "
                          f"gave a usable record ({counts}); is the download or extraction "
                          f"complete?")


# ---- tar archives ---------------------------------------------------------------------------
#
# Archives are read as streams (``tarfile`` ``r|``), which on its own trusts a damaged archive
# too much: gzip's CRC is never checked in stream mode, and a garbled member header is taken as
# the end of the archive. So the decompression goes through the gzip/bz2/lzma modules (which
# check their CRCs once the stream is read to its end) and every pass reads the archive to its
# last byte: a damaged archive is a SourceError naming it, never a silently shortened or
# garbled one. Readers hold nothing until the archive proved whole (see partitions.py).

_READ_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError)


def _decompressed(path: Path):
    """``path`` opened for reading, through the decompressor its magic bytes name."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"\x1f\x8b":
        return gzip.open(path, "rb")
    if magic[:3] == b"BZh":
        return bz2.open(path, "rb")
    if magic == b"\xfd7zXZ\x00":
        return lzma.open(path, "rb")
    return open(path, "rb")


@contextmanager
def _tar_stream(path: Path) -> Iterator[tarfile.TarFile]:
    """A streamed TarFile of ``path``; after the body, the archive is read to its end: what
    follows the end-of-archive marker must be zeros (a damaged header ends ``tarfile``'s
    iteration early, silently), and the decompressor's CRC check runs."""
    with _decompressed(path) as raw, tarfile.open(fileobj=raw, mode="r|") as tar:
        yield tar
        for _ in tar:  # the members the body did not ask for
            pass
        while chunk := tar.fileobj.read(1 << 20):
            if chunk.strip(b"\0"):
                raise tarfile.ReadError(f"unreadable data after member {len(tar.members)} "
                                        f"(a damaged header?)")


def unsafe_reason(member: tarfile.TarInfo) -> str | None:
    """Why a member must not be read or extracted (None when it is a plain, safe file)."""
    name = member.name
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        return "absolute path"
    if ".." in PurePosixPath(name).parts:
        return "'..' in path"
    if member.issym() or member.islnk():
        return "link member"
    if not member.isfile():
        return "not a regular file"
    try:  # the stdlib's own extraction policy, applied per member
        tarfile.data_filter(member, "/nonexistent-dest")
    except tarfile.FilterError as e:
        return f"rejected by tarfile data filter: {e}"
    return None


def _file_members(tar: tarfile.TarFile) -> Iterator[tuple[tarfile.TarInfo, str | None]]:
    """Every non-directory member of a streamed archive with why it is unsafe (or None)."""
    for m in tar:
        if not m.isdir():
            yield m, unsafe_reason(m)


@dataclass
class ArchiveIndex:
    members: list[str] = field(default_factory=list)  # safe regular files, archive order
    unsafe: list[tuple[str, str]] = field(default_factory=list)  # (name, why)


def index_archive(path: Path, cache_dir: Path | None = None) -> ArchiveIndex:
    """List an archive's members (one streaming pass that checks the whole archive), cached
    by path, size and mtime; only an archive that read without error is cached."""
    st = path.stat()
    cache = None
    if cache_dir is not None:
        tag = hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        cache = Path(cache_dir) / "archive-index" / f"{tag}.json"
        if cache.exists():
            d = json.loads(cache.read_text())
            return ArchiveIndex(d["members"], [tuple(u) for u in d["unsafe"]])
    idx = ArchiveIndex()
    try:
        with _tar_stream(path) as tar:
            for m, why in _file_members(tar):
                if why:
                    idx.unsafe.append((m.name, why))
                else:
                    idx.members.append(m.name)
    except _READ_ERRORS as e:
        raise SourceError(f"unreadable archive {path}: {e}") from None
    if cache is not None:
        from ..files import atomic_write_bytes
        atomic_write_bytes(cache, json.dumps({"members": idx.members, "unsafe": idx.unsafe}).encode())
    return idx


def iter_archive(path: Path, wanted: set[str], max_bytes: int | None = None
                 ) -> Iterator[tuple[str, bytes | None, str]]:
    """``(member name, bytes, "")`` of the safe members in ``wanted``, in archive order; a
    member larger than ``max_bytes`` (by its header, before anything is read) comes as
    ``(name, None, why)`` and is skipped unread. The archive is read to its end; a damaged
    one raises SourceError naming it (after the members before the damage were yielded:
    a caller keeps nothing until the iteration finished)."""
    try:
        with _tar_stream(path) as tar:
            for m, why in _file_members(tar):
                if m.name not in wanted or why is not None:
                    continue
                if max_bytes is not None and m.size > max_bytes:
                    yield m.name, None, f"{path.name}:{m.name} is {m.size} bytes, over the " \
                                        f"{max_bytes}-byte bound for one clip"
                    continue
                f = tar.extractfile(m)
                yield m.name, f.read() if f else b"", ""
    except _READ_ERRORS as e:
        raise SourceError(f"unreadable archive {path}: {e}") from None


MARKER = ".sweaug-complete.json"


def extract_archive(path: Path, dest: Path, source: str) -> list[Drop]:
    """Extract ``path`` into ``dest`` once; returns the archive's drops.

    The extraction goes into a temporary sibling folder, is checked (the whole archive read
    without error, CRC included) and only then renamed to ``dest`` with a marker
    (``.sweaug-complete.json``) naming the archive's size and mtime: a ``dest`` without the
    marker, or with another archive's, is extracted again; a read error is a SourceError
    naming the archive and leaves no ``dest``. Each member goes through
    :func:`unsafe_reason`; an unsafe one is skipped and returned as an ``unsafe_member`` drop:
    nothing is ever written outside ``dest``, and one bad member does not abort the archive.
    """
    st = path.stat()
    stamp = {"archive": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = dest / MARKER
    if marker.exists():
        try:
            done = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            done = {}
        if all(done.get(k) == v for k, v in stamp.items()):
            return [Drop(**d) for d in done["drops"]]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    tmp.chmod(0o755)
    drops: list[Drop] = []
    root = tmp.resolve()
    try:
        try:
            with _tar_stream(path) as tar:
                for m, why in _file_members(tar):
                    target = (root / m.name).resolve()
                    if why is None and not target.is_relative_to(root):
                        why = "resolves outside the destination"
                    if why:
                        drops.append(Drop(source, "archive", f"{path.name}:{m.name}",
                                          "unsafe_member", why))
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(m) as src, open(target, "wb") as out:
                        while block := src.read(1 << 20):
                            out.write(block)
        except _READ_ERRORS as e:
            raise SourceError(f"{source}: unreadable archive {path}: {e}") from None
        (root / MARKER).write_text(json.dumps({**stamp, "drops": [d.as_dict() for d in drops]}))
        if dest.exists():  # stale or incomplete: out of the way, then removed
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.stale-", dir=dest.parent))
            os.replace(dest, old / "x")
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return drops


# ---- the Hugging Face Hub ----------------------------------------------------------------------

def hub_files(repo_id: str, revision: str, patterns: list[str]) -> Path:
    """Download the files matching ``patterns`` of a dataset repo at a pinned revision into the
    normal huggingface_hub cache (``HF_HUB_CACHE``; with ``HF_HUB_OFFLINE=1`` what is cached is
    used); returns the local snapshot folder, which has the repo's layout."""
    try:
        from huggingface_hub import snapshot_download
        return Path(snapshot_download(repo_id=repo_id, repo_type="dataset", revision=revision,
                                      allow_patterns=patterns))
    except Exception as e:  # network, auth, gated repo: say which repo and what failed
        raise SourceError(f"could not fetch {patterns} from the Hub dataset {repo_id}@{revision}: "
                          f"{type(e).__name__}: {e}. Download it yourself and pass its folder "
                          f"with --<source>-dir.") from None
