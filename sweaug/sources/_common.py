"""Helpers every corpus module shares: quirk-tolerant TSV reading, safe tar archives, Hub files."""
from __future__ import annotations

import csv
import hashlib
import json
import os
import tarfile
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
    with fewer fields than the header is dropped as ``missing_fields``.
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
        values = next(csv.reader([text], delimiter="\t", quoting=csv.QUOTE_NONE))
        if len(values) < len(header):
            yield Drop(source, split, where, "missing_fields",
                       f"{len(values)} of {len(header)} fields")
            continue
        yield Row(line_no, dict(zip(header, values)))


# ---- tar archives ---------------------------------------------------------------------------

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
    """List an archive's members (one streaming pass), cached by path, size and mtime."""
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
        with tarfile.open(path, "r|*") as tar:
            for m, why in _file_members(tar):
                if why:
                    idx.unsafe.append((m.name, why))
                else:
                    idx.members.append(m.name)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SourceError(f"unreadable archive {path}: {e}") from None
    if cache is not None:
        from ..shards import atomic_write_bytes
        atomic_write_bytes(cache, json.dumps({"members": idx.members, "unsafe": idx.unsafe}).encode())
    return idx


def iter_archive(path: Path, wanted: set[str]) -> Iterator[tuple[str, bytes]]:
    """``(member name, bytes)`` of the safe members in ``wanted``, in archive order."""
    with tarfile.open(path, "r|*") as tar:
        for m, why in _file_members(tar):
            if m.name in wanted and why is None:
                f = tar.extractfile(m)
                yield m.name, f.read() if f else b""


def extract_archive(path: Path, dest: Path, source: str) -> list[Drop]:
    """Extract ``path`` into ``dest`` once (marker file ``.sweaug-complete.json``).

    Each member goes through :func:`unsafe_reason`; an unsafe one is skipped and returned as
    an ``unsafe_member`` drop: nothing is ever written outside ``dest``, and one bad member
    does not abort the archive. Files land under temporary names and are renamed.
    """
    marker = dest / ".sweaug-complete.json"
    if marker.exists():
        return [Drop(**d) for d in json.loads(marker.read_text())["drops"]]
    dest.mkdir(parents=True, exist_ok=True)
    drops: list[Drop] = []
    root = dest.resolve()
    try:
        with tarfile.open(path, "r|*") as tar:
            for m, why in _file_members(tar):
                target = (root / m.name).resolve()
                if why is None and not target.is_relative_to(root):
                    why = "resolves outside the destination"
                if why:
                    drops.append(Drop(source, "archive", f"{path.name}:{m.name}", "unsafe_member", why))
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f".{target.name}.part")
                with tar.extractfile(m) as src, open(tmp, "wb") as out:
                    while block := src.read(1 << 20):
                        out.write(block)
                os.replace(tmp, target)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SourceError(f"{source}: unreadable archive {path}: {e}") from None
    from ..shards import atomic_write_bytes
    atomic_write_bytes(marker, json.dumps({"archive": str(path),
                                           "drops": [d.as_dict() for d in drops]}).encode())
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
