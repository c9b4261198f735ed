"""Reading shard samples safely: a truncated tar, a sample without its ``.flac`` or ``.json``,
or unreadable metadata is a :class:`~sweaug.build.shards.ShardReadError` naming the shard and the
member (the CLI prints it, exit 2), never a ``KeyError`` or a raw ``tarfile.ReadError``; and
:func:`check_shard`, the preflight ``sweaug ablate`` runs on every shard before training.
No torch here: ``sweaug ablate --dry-run`` runs without the train extra.
"""
from __future__ import annotations

import json

NEEDED = ("flac", "json")  # the members of every sample (see sweaug.build.shards)


def check_members(path, key: str, files, need: tuple[str, ...] = NEEDED) -> None:
    """Refuse (:class:`~sweaug.build.shards.ShardReadError`, naming shard and member) a sample of
    ``path`` that lacks one of the ``need`` members (``files``: its extensions or members)."""
    from ..build.shards import ShardReadError

    lacking = [f"{key}.{e}" for e in need if e not in files]
    if lacking:
        raise ShardReadError(f"{path}: sample {key!r} has no member {', '.join(lacking)} "
                             f"(a shard sample is {' + '.join('.' + e for e in need)}): rebuild "
                             f"the shard")


def sample_meta(path, key: str, files: dict, fields: tuple[str, ...] = ("text",)) -> dict:
    """The parsed ``.json`` member of a sample, refused (naming shard and member) when it is
    missing, not a JSON object, or lacks one of ``fields``."""
    from ..build.shards import ShardReadError

    check_members(path, key, files, ("json",))
    try:
        meta = json.loads(files["json"])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ShardReadError(f"{path}: member {key}.json is not valid JSON ({e})") from None
    if not isinstance(meta, dict) or any(f not in meta for f in fields):
        raise ShardReadError(f"{path}: member {key}.json has no "
                             f"{', '.join(repr(f) for f in fields)} field")
    return meta


def check_shard(path, size: int | None = None, samples: int | None = None) -> int:
    """Preflight of one shard, reading its tar headers only (no audio): it is a complete tar
    (``size`` bytes when given, as its manifest says; every member's data inside the file),
    every sample has its ``.flac`` and ``.json``, and (``samples`` given) it holds that many.
    Returns its sample count; raises :class:`~sweaug.build.shards.ShardReadError` naming the shard
    and the member."""
    import os
    import tarfile
    from zlib import error as zlib_error

    from ..build.shards import ShardReadError, check_end, read_error

    actual = os.path.getsize(path)
    if size is not None and actual != size:
        raise ShardReadError(f"{path}: {actual} bytes, but its manifest says {size}: truncated "
                             f"or replaced since it was built; rebuild it")
    count, key, exts, where = 0, None, set(), "at its first member"
    try:
        with tarfile.open(path, "r:") as tar:
            for m in tar:
                if not m.isfile() or m.offset_data + m.size > actual:
                    raise ShardReadError(
                        f"{path}: member {m.name!r} " + ("is not a file" if not m.isfile() else
                                                         f"ends past the end of the file "
                                                         f"({actual} bytes): truncated"))
                k, _, ext = m.name.partition(".")
                if k != key:
                    if key is not None:
                        check_members(path, key, exts)
                    key, exts, count = k, set(), count + 1
                exts.add(ext)
                where = f"after member {m.name!r}"
            check_end(tar, path, where)
    except (tarfile.TarError, EOFError, zlib_error) as e:
        if isinstance(e, ShardReadError):
            raise
        raise read_error(path, where, e) from None
    if key is not None:
        check_members(path, key, exts)
    if samples is not None and count != samples:
        raise ShardReadError(f"{path}: {count} samples, but its manifest says {samples}; "
                             f"rebuild it")
    return count
