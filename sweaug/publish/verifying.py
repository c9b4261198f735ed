"""Step 2 of ``sweaug publish``: every shard checked against its manifest (sha256, sample
count) and every sample's JSON read, to derive each config's schema (the card's features).
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any, Callable

from .planning import Plan, PublishError, _sha256

# What the first samples may not show: an empty list's element type. Everything else unknown
# after every sample of a config has been read becomes a string.
_KNOWN_ELEMENTS = {("augment", "applied"): {"name": "string", "parameters": "string"}}


def _schema_of(value: Any) -> Any:
    """The type of a JSON value: a dtype name, a dict (struct), ("list", element) or None
    (unknown: null, or an empty list's element)."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return {k: _schema_of(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        elem = None
        for v in value:
            elem = _merge(elem, _schema_of(v), ())
        return ("list", elem)
    return None


class _Mismatch(Exception):
    def __init__(self, where: tuple, what: str):
        super().__init__(what)
        self.where, self.what = where, what


def _merge(a: Any, b: Any, where: tuple) -> Any:
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            extra, missing = sorted(b.keys() - a.keys()), sorted(a.keys() - b.keys())
            raise _Mismatch(where, "keys differ" + (f"; extra {extra}" if extra else "")
                            + (f"; missing {missing}" if missing else ""))
        return {k: _merge(a[k], b[k], where + (k,)) for k in a}
    if isinstance(a, tuple) and isinstance(b, tuple):
        return ("list", _merge(a[1], b[1], where + ("[]",)))
    if a == b:
        return a
    if {a, b} == {"int64", "float64"}:
        return "float64"
    raise _Mismatch(where, f"type {_type_name(b)} where the first samples have {_type_name(a)}")


def _type_name(s: Any) -> str:
    return "struct" if isinstance(s, dict) else "list" if isinstance(s, tuple) else str(s)


def _resolve(s: Any, where: tuple = ()) -> Any:
    """Replace what no sample could tell by the known element types, else string."""
    if isinstance(s, dict):
        return {k: _resolve(v, where + (k,)) for k, v in s.items()}
    if isinstance(s, tuple):
        elem = s[1] if s[1] is not None else _KNOWN_ELEMENTS.get(where, "string")
        return ("list", _resolve(elem, where + ("[]",)))
    return "string" if s is None else s


def _scan_shard(path: Path) -> tuple[int, list[tuple[str, tuple[str, ...], dict | None]]]:
    """(samples, [(key, extensions, json)]) of one shard, reading only tar headers and JSON."""
    samples: list[tuple[str, tuple[str, ...], dict | None]] = []
    key, exts, meta = None, [], None
    with tarfile.open(path, "r:") as tar:
        for m in tar:
            if not m.isfile():
                continue
            name = m.name.rsplit("/", 1)[-1]
            k, _, ext = name.partition(".")
            if k != key:
                if key is not None:
                    samples.append((key, tuple(exts), meta))
                key, exts, meta = k, [], None
            exts.append(ext)
            if ext == "json":
                meta = json.loads(tar.extractfile(m).read())
    if key is not None:
        samples.append((key, tuple(exts), meta))
    return len(samples), samples


def verify(p: Plan, progress: Callable[[str], None] | None = None) -> None:
    """Check every shard against its manifest and derive each config's sample schema."""
    total = sum(len(v) for c in p.configs for v in c.shards.values())
    done = 0
    for c in p.configs:
        schema, exts, sr = None, None, None
        for split, shards in c.shards.items():
            for s in shards:
                done += 1
                if progress and (done == 1 or done % 50 == 0 or done == total):
                    progress(f"verifying shards: {done}/{total}")
                if not s.src.is_file():
                    raise PublishError(f"shard {s.src} listed in the manifest is missing: "
                                       f"refusing to publish an incomplete corpus")
                got = _sha256(s.src)
                if got != s.sha256:
                    raise PublishError(
                        f"shard {s.src} does not match the sha256 in its manifest (expected "
                        f"{s.sha256[:12]}…, got {got[:12]}…): refusing to publish corrupt "
                        f"data; "
                        f"rebuild it (re-running the same `sweaug build`/`augment` command "
                        f"rewrites only what is damaged)")
                try:
                    n, samples = _scan_shard(s.src)
                except (tarfile.TarError, OSError, ValueError) as e:
                    raise PublishError(f"shard {s.src} cannot be read: {e}") from None
                if n != s.samples:
                    raise PublishError(f"shard {s.src} holds {n} samples, its manifest says "
                                       f"{s.samples}: refusing to publish")
                for key, e, meta in samples:
                    if exts is None:
                        exts = e
                    if e != exts or "json" not in e:
                        raise PublishError(f"{s.src}: sample {key!r} has files {list(e)}, the "
                                           f"first sample of {c.name} has {list(exts)}")
                    try:
                        schema = _merge(schema, _schema_of(meta), ())
                    except _Mismatch as m:
                        field_ = ".".join(m.where) or "(top level)"
                        raise PublishError(f"{s.src}: sample {key!r} does not have the schema of "
                                           f"the first sample of {c.name} at {field_}: {m.what}; "
                                           f"the card's features must fit every sample") from None
                    if sr is None and isinstance(meta, dict):
                        sr = meta.get("sample_rate")
        c.schema, c.extensions, c.sample_rate = _resolve(schema), exts or (), sr
