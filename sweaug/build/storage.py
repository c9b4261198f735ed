"""Where a build or an augmentation writes: a local folder or an fsspec URL.

``open_store(location)`` gives one small interface over both, with paths relative to the
output root ("cv/train-000000.tar", ".sweaug/parts/..."):

* **a local folder** (a plain path): files are written under a temporary name in the same folder,
  fsynced and renamed (``os.replace``, atomic on POSIX). Workers write their shards in place.
* **an fsspec URL** (``s3://bucket/corpus``, ``gs://...``, ``file:///...``, any protocol fsspec
  knows; its package installed, e.g. ``pip install 'sweaug[s3]'``): a worker writes a partition
  into a local temporary folder, then commits each file to the store:

  - object stores (s3, gs/gcs, az/abfs): a PUT is atomic: an object appears whole, under its
    final name, only once its upload completed (a multipart upload that is killed leaves no
    object; an S3 lifecycle rule "abort incomplete multipart uploads" reclaims its parts). A
    "move" (staging -> final name) is a server-side copy + delete: readers see either no object
    or the whole one, never a partial object; a crash between copy and delete leaves a staged
    copy, removed by the next run;
  - every other protocol (``file://``, sftp, ...): written to a temporary name
    ``.<name>.tmp<pid>-<random>`` and renamed (atomic where the backend's rename is, e.g. POSIX).

Resume on a store: an object store has no cheap sha256 of an object, so a staged shard counts as
present when its size matches its record (the record is committed only after its shards, and
every object is whole), and final shards are known from ``.sweaug/finals.json``, written after
every finalization (a local folder re-hashes its shards instead).

Storage options (credentials, endpoint) come from ``--storage-option key=value`` or fsspec's own
configuration (``FSSPEC_S3_ENDPOINT_URL=...``-style environment variables, ``~/.config/fsspec``).

Inputs given as URLs (``s3://``, ``gs://``, ``hf://``, ``file://``...) are read, not written:
``fetch_input`` copies them once into the cache (``hf://`` is an input only: a corpus goes to
the Hub with ``sweaug publish``).

One run at a time writes an output (:class:`OutputLock`, taken by ``build``, ``augment`` and
``jobs.run_jobs``): a second run into the same output stops with an error naming the first
(pid, host, command, start time) instead of deleting its temporary files. A local folder (and a
``file://`` URL) is locked with an OS lock (``flock`` through the ``filelock`` package), which
the OS releases when the process dies however it dies: a lock left by a dead run is taken over
(with a warning naming it); on a shared file system it holds across machines where the file
system supports ``flock`` (NFSv4, Lustre, CephFS; not every FUSE mount). Any other fsspec URL
gets a best-effort lock: an object ``.sweaug/lock.json`` naming its holder, checked and
written at the start (two runs started within the same moment can both proceed: object stores
have no atomic create-if-absent through fsspec) and removed at the end; one left by a killed run
is taken over when its pid is dead on this host, else the error says to delete it.

Outputs never overlap inputs (:func:`refuse_overlap`): writing into, over or around an input
folder would overwrite or delete it.
"""
from __future__ import annotations

import json
import logging
import os
import uuid
from pathlib import Path, PurePosixPath

from ..records import ConfigError, SourceError

OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}
LOCK = ".sweaug/lock"  # the OS lock of a local output
LOCK_INFO = ".sweaug/lock.json"  # who holds it (host, pid, command, start time)
log = logging.getLogger("sweaug.storage")


class StorageError(SourceError):
    """The output store cannot be read or written (names the URL; no traceback in the CLI)."""


def is_url(location) -> bool:
    return "://" in str(location)


def parse_storage_options(pairs) -> dict:
    """``["key=value", ...]`` -> dict; a value that parses as JSON (``true``, ``3``,
    ``{"endpoint_url": "..."}``) is taken as such, anything else as a string."""
    out = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--storage-option {pair!r}: expected key=value")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def open_store(location, storage_options: dict | None = None):
    """A LocalStore for a plain path, an FsspecStore for a URL (``file://`` included)."""
    if isinstance(location, (LocalStore, FsspecStore)):
        return location
    if is_url(location):
        if str(location).startswith("hf://"):
            raise ConfigError(f"{location}: the Hub takes no partial builds; build into a "
                              "folder or a bucket, then `sweaug publish` it")
        return FsspecStore(str(location), storage_options or {})
    if storage_options:
        raise ConfigError("--storage-option applies to fsspec URLs (s3://, gs://, file://...), "
                          f"not to the local folder {location}")
    return LocalStore(Path(location))


def _tmp_name(rel: str) -> str:
    p = PurePosixPath(rel)
    return str(p.with_name(f".{p.name}.tmp{os.getpid()}-{uuid.uuid4().hex[:8]}"))


def is_temp(name: str) -> bool:
    """A temporary name (``.<name>.tmp<pid>...``) that only a killed writer leaves behind."""
    return name.startswith(".") and ".tmp" in name[1:]


class LocalStore:
    """A local folder (also a shared file system that every worker mounts at the same path)."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.local = self.root  # workers write here directly
        self.url = str(self.root)

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def makedirs(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create the output folder {self.root}: "
                               f"{e.strerror or e}") from None

    def files(self, prefix: str = "") -> dict[str, int]:
        """Every file under ``prefix`` (recursive): relative path -> size."""
        base = self.root / prefix
        out = {}
        for dirpath, _, names in os.walk(base):
            for n in names:
                p = Path(dirpath) / n
                try:
                    out[p.relative_to(self.root).as_posix()] = p.stat().st_size
                except FileNotFoundError:
                    pass
        return out

    def list_dir(self, rel: str) -> list[str]:
        d = self.root / rel
        return sorted(p.name for p in d.iterdir() if p.is_file()) if d.is_dir() else []

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return (self.root / rel).read_bytes()
        except FileNotFoundError:
            return None

    def write_bytes(self, rel: str, data: bytes) -> None:
        from ..files import atomic_write_bytes

        atomic_write_bytes(self.root / rel, data)

    def move(self, src: str, dst: str) -> None:
        (self.root / dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / src, self.root / dst)

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def sha256(self, rel: str) -> str:
        from ..files import sha256_file

        return sha256_file(self.root / rel)


class FsspecStore:
    """An fsspec URL. Picklable (rebuilt from the URL and options in a worker)."""

    local = None

    def __init__(self, url: str, options: dict | None = None):
        self.url, self.options = url.rstrip("/"), dict(options or {})
        try:
            import fsspec
        except ImportError:
            raise ConfigError(f"{url}: writing to a URL needs fsspec: "
                              "pip install 'sweaug[s3]' (or [gcs])") from None
        protocol = url.split("://", 1)[0]
        try:
            self.fs, self.root = fsspec.core.url_to_fs(self.url, **self.options)
        except ImportError as e:
            extra = EXTRAS.get(protocol)
            hint = f"pip install 'sweaug[{extra}]'" if extra else str(e)
            raise ConfigError(f"{url}: the {protocol}:// file system is not installed: "
                              f"{hint}") from None
        except (ValueError, TypeError) as e:
            raise ConfigError(f"{url}: {e}") from None
        self.root = self.root.rstrip("/")
        self.protocol = protocol
        self.atomic_put = protocol in OBJECT_STORES

    def __reduce__(self):
        return FsspecStore, (self.url, self.options)

    def __repr__(self) -> str:
        return f"FsspecStore({self.url!r})"

    def _p(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def full(self, rel: str) -> str:
        return f"{self.url}/{rel}" if rel else self.url

    def _err(self, what: str, rel: str, e: Exception) -> StorageError:
        return StorageError(f"cannot {what} {self.full(rel)}: {e}")

    def _mkparent(self, path: str) -> None:
        if not self.atomic_put:  # object stores have no folders
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)

    def makedirs(self) -> None:
        try:
            if self.atomic_put:
                self.fs.invalidate_cache()
                bucket = self.root.split("/", 1)[0]
                if not self.fs.exists(bucket):
                    raise FileNotFoundError(f"bucket {bucket} does not exist")
            else:
                self.fs.makedirs(self.root, exist_ok=True)
        except Exception as e:  # botocore/gcsfs raise their own types for credentials
            raise self._err("write to", "", e) from None

    def files(self, prefix: str = "") -> dict[str, int]:
        self.fs.invalidate_cache()
        base = self._p(prefix)
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return {}
        except Exception as e:
            raise self._err("list", prefix, e) from None
        n = len(self.root) + 1
        return {p[n:]: int(info.get("size") or 0) for p, info in found.items()
                if info.get("type", "file") == "file" and p.startswith(self.root + "/")}

    def list_dir(self, rel: str) -> list[str]:
        return sorted(PurePosixPath(p).name for p in self.files(rel)
                      if PurePosixPath(p).parent == PurePosixPath(rel))

    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(self._p(rel))

    def read_bytes(self, rel: str) -> bytes | None:
        try:
            return self.fs.cat_file(self._p(rel))
        except FileNotFoundError:
            return None
        except Exception as e:
            raise self._err("read", rel, e) from None

    def write_bytes(self, rel: str, data: bytes) -> None:
        try:
            if self.atomic_put:
                self.fs.pipe_file(self._p(rel), data)
                return
            tmp = self._p(_tmp_name(rel))
            self._mkparent(tmp)
            self.fs.pipe_file(tmp, data)
            self.fs.mv(tmp, self._p(rel))
        except Exception as e:
            raise self._err("write", rel, e) from None

    def put_file(self, src: Path, rel: str) -> None:
        try:
            if self.atomic_put:
                self.fs.put_file(str(src), self._p(rel))
                return
            tmp = self._p(_tmp_name(rel))
            self._mkparent(tmp)
            self.fs.put_file(str(src), tmp)
            self.fs.mv(tmp, self._p(rel))
        except Exception as e:
            raise self._err("upload", rel, e) from None

    def move(self, src: str, dst: str) -> None:
        try:
            self._mkparent(self._p(dst))
            self.fs.mv(self._p(src), self._p(dst))
        except Exception as e:
            raise self._err(f"move {self.full(src)} to", dst, e) from None

    def remove(self, rel: str) -> None:
        try:
            self.fs.rm_file(self._p(rel))
        except FileNotFoundError:
            pass
        except Exception as e:
            raise self._err("remove", rel, e) from None


def fetch_input(location, cache_dir: Path) -> Path | None:
    """An input given as a URL (``s3://``, ``gs://``, ``hf://datasets/...``, ``file://``,
    ``https://``...): a file or a folder copied once into ``<cache_dir>/inputs/`` (under its own
    name, so that e.g. a Common Voice release folder keeps its name) and reused while its
    listing (names, sizes, etags/mtimes) is unchanged. A plain path (or None) is returned as it
    is. Options for the input's file system come from fsspec's configuration
    (``FSSPEC_S3_ENDPOINT_URL``-style variables); Hub tokens from ``HF_TOKEN``."""
    if location is None or not is_url(location):
        return location
    import hashlib
    import shutil

    url = str(location).rstrip("/")
    try:
        import fsspec

        fs, path = fsspec.core.url_to_fs(url)
    except ImportError as e:
        raise ConfigError(f"{url}: the file system for this URL is not installed ({e})") from None
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{url}: {e}") from None
    try:
        info = fs.info(path)
        folder = info.get("type") == "directory"
        listing = fs.find(path, detail=True) if folder else {path: info}
    except FileNotFoundError:
        raise SourceError(f"input {url} does not exist") from None
    except Exception as e:
        raise SourceError(f"cannot read input {url}: {e}") from None
    keys = ("size", "ETag", "etag", "mtime", "LastModified", "last_modified", "md5Hash")
    fingerprint = hashlib.sha256(json.dumps(
        sorted([p[len(path):], *(str(i.get(k)) for k in keys)] for p, i in listing.items()),
    ).encode()).hexdigest()
    base = Path(cache_dir) / "inputs" / hashlib.sha256(url.encode()).hexdigest()[:16]
    dest = base / PurePosixPath(path).name
    marker = base / ".complete.json"
    try:
        if json.loads(marker.read_text())["fingerprint"] == fingerprint and dest.exists():
            return dest
    except (OSError, ValueError, KeyError):
        pass
    tmp = base / f".partial{os.getpid()}"
    shutil.rmtree(base, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        if folder:
            fs.get(path.rstrip("/") + "/", str(tmp / dest.name) + "/", recursive=True)
        else:
            fs.get_file(path, str(tmp / dest.name))
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise SourceError(f"cannot download input {url}: {e}") from None
    os.replace(tmp / dest.name, dest)
    tmp.rmdir()
    marker.write_text(json.dumps({"url": url, "fingerprint": fingerprint}))
    return dest


def _local_path(store) -> Path | None:
    """The local folder behind a store: a plain path, or a ``file://`` URL."""
    if store.local is not None:
        return store.local
    return Path(store.root) if store.protocol in ("file", "local") else None


def refuse_overlap(out, inputs) -> None:
    """Raise ConfigError when the output ``out`` is, contains or is inside one of ``inputs``
    (``[(what, path), ...]``, e.g. ``("--cv-dir", "data/cv")``; None and non-file URLs are
    skipped). Paths are compared resolved: relative to the cwd, ``..`` and symlinks followed."""
    def resolved(p) -> Path | None:
        if p is None:
            return None
        if not is_url(p):
            return Path(p).expanduser().resolve()
        return Path(str(p)[len("file://"):]).resolve() if str(p).startswith("file://") else None

    o = resolved(out)
    if o is None:
        return
    for what, path in inputs:
        i = resolved(path)
        if i is None:
            continue
        how = ("is" if o == i else "is inside" if o.is_relative_to(i)
               else "contains" if i.is_relative_to(o) else None)
        if how:
            shown = (f" (resolved: --out {o}, input {i})"
                     if (str(out), str(path)) != (str(o), str(i)) else "")
            raise ConfigError(f"--out {out} {how} the input {what} {path}{shown}: writing there "
                              "would overwrite or delete the input; choose an output folder "
                              "outside it")


class OutputBusy(StorageError):
    """Another run is writing the same output."""


_held: dict[str, list] = {}  # lock key -> [depth, release]: a process re-entering its own lock


def _command_line() -> str:
    import shlex
    import sys

    argv = list(sys.argv) or ["?"]
    if Path(argv[0]).name in ("sweaug", "cli.py", "__main__.py", "-c"):
        argv[0] = "sweaug"
    text = shlex.join(argv)
    return text if len(text) <= 300 else text[:297] + "..."


def _read_info(data: bytes | None) -> dict | None:
    try:
        info = json.loads(data) if data else None
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError, OSError):
        return True  # someone else's process, or a pid we cannot judge: assume alive
    return True


def _holder(info: dict | None) -> str:
    if not info:
        return "another sweaug run (it has not recorded who it is yet)"
    return (f"another sweaug run (pid {info.get('pid', '?')} on host {info.get('host', '?')}, "
            f"started {info.get('started', '?')}: {info.get('command', '?')})")


class OutputLock:
    """The exclusive right to write an output while a build or an augmentation runs (see the
    module docstring for what it guarantees where). Re-entrant within one process (``sweaug
    build`` takes it, then ``run_jobs`` again). Raises OutputBusy (exit 2 in the CLI) when
    another live run holds it."""

    def __init__(self, out, storage_options: dict | None = None, command: str | None = None):
        import socket

        self.store = open_store(out, storage_options)
        self.local = _local_path(self.store)
        self.key = str(self.local.resolve()) if self.local is not None else self.store.url
        self.info = {"host": socket.gethostname(), "pid": os.getpid(),
                     "command": command or _command_line()}

    def __enter__(self) -> "OutputLock":
        held = _held.get(self.key)
        if held:
            held[0] += 1
            return self
        from datetime import datetime

        self.info["started"] = datetime.now().astimezone().isoformat(timespec="seconds")
        release = self._lock_local() if self.local is not None else self._lock_store()
        _held[self.key] = [1, release]
        return self

    def __exit__(self, *exc) -> None:
        held = _held[self.key]
        held[0] -= 1
        if held[0] == 0:
            del _held[self.key]
            held[1]()

    def _took_over(self, prev: dict) -> None:
        log.warning("%s: taking over the lock of a sweaug run that is gone (pid %s on host %s, "
                    "started %s: %s); its unfinished work is resumed or removed", self.store.url,
                    prev.get("pid", "?"), prev.get("host", "?"), prev.get("started", "?"),
                    prev.get("command", "?"))

    def _lock_local(self):
        from filelock import FileLock, Timeout

        from ..files import atomic_write_bytes

        info_path = self.local / LOCK_INFO
        try:
            info_path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(self.local / LOCK), timeout=0)
            lock.acquire()
        except Timeout:
            raise OutputBusy(f"{_holder(_read_info(_read(info_path)))} is writing to "
                             f"{self.store.url}: wait for it to finish, or choose another "
                             "--out") from None
        except OSError as e:
            raise StorageError(f"cannot lock the output folder {self.local}: "
                               f"{e.strerror or e}") from None
        prev = _read_info(_read(info_path))
        if prev:  # the OS released its lock: that process is gone
            self._took_over(prev)
        atomic_write_bytes(info_path, json.dumps(self.info).encode())

        def release() -> None:
            info_path.unlink(missing_ok=True)
            lock.release()
        return release

    def _lock_store(self):
        import socket

        store = self.store
        prev = _read_info(store.read_bytes(LOCK_INFO))
        if prev:
            if prev.get("host") == socket.gethostname() and not _alive(prev.get("pid")):
                self._took_over(prev)
            else:
                raise OutputBusy(f"{_holder(prev)} is writing to {store.url}: wait for it to "
                                 "finish, or choose another --out. If that run is no longer "
                                 f"running (killed on another machine), delete "
                                 f"{store.full(LOCK_INFO)}")
        mine = json.dumps(self.info).encode()
        store.write_bytes(LOCK_INFO, mine)

        def release() -> None:
            if store.read_bytes(LOCK_INFO) == mine:
                store.remove(LOCK_INFO)
        return release


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None
