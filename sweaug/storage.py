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
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path, PurePosixPath

from .records import ConfigError, SourceError

OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}
EXTRAS = {"s3": "s3", "s3a": "s3", "gs": "gcs", "gcs": "gcs"}


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
        from .shards import atomic_write_bytes

        atomic_write_bytes(self.root / rel, data)

    def move(self, src: str, dst: str) -> None:
        (self.root / dst).parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.root / src, self.root / dst)

    def remove(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def sha256(self, rel: str) -> str:
        from .shards import sha256_file

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
