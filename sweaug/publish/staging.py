"""Step 3 of ``sweaug publish``: the exact repo layout in the stage folder, by hard links (or
copies across filesystems), synchronised in place so that a re-run keeps unchanged files (and
their upload state) untouched.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .planning import Plan, PublishError, _sha256

STAGE_MARKER = ".sweaug-stage"  # marks a folder as a sweaug stage (never uploaded)


def _published_manifest(p: Plan) -> dict:
    m = json.loads(json.dumps(p.manifest))
    left = {n for n in m.get("sources", {}) if n in p.excluded}
    for n in left:
        del m["sources"][n]
    for c in p.configs:
        if c.kind == "source":
            for split, shards in c.shards.items():
                for entry, s in zip(m["sources"][c.name]["splits"][split]["shards"], shards):
                    entry["path"] = s.path
    m["drops"] = [d for d in m.get("drops", []) if d.get("source") not in left]
    m["published"] = {"corpus_manifest_sha256": _sha256(p.corpus / "manifest.json"),
                      "left_out": {k: v for k, v in p.excluded.items()}}
    return m


def _published_leakage(p: Plan) -> bytes | None:
    path = p.corpus / "leakage.tsv"
    if not path.exists():
        return None
    lines = path.read_text(encoding="utf-8").splitlines()
    head, rows = lines[:1], lines[1:]
    keep = [r for r in rows if r.split("\t", 1)[0] not in p.excluded]
    return ("\n".join(head + keep) + "\n").encode()


def default_stage_dir(corpus: Path, repo_id: str) -> Path:
    return Path(corpus) / ".sweaug" / "publish" / repo_id.replace("/", "--")


def _stage_files(p: Plan, card: str) -> dict[str, Path | bytes]:
    want: dict[str, Path | bytes] = {"README.md": card.encode()}
    want["manifest.json"] = (json.dumps(_published_manifest(p), ensure_ascii=False, indent=1,
                                        sort_keys=True) + "\n").encode()
    leak = _published_leakage(p)
    if leak is not None:
        want["leakage.tsv"] = leak
    for c in p.configs:
        for shards in c.shards.values():
            for s in shards:
                want[s.path] = s.src
        if c.manifest is not None:  # shard paths relative to the set's folder, as in the corpus
            am = json.loads(json.dumps(c.manifest))
            for split, shards in c.shards.items():
                entries = next(iter(am["sources"].values()))["splits"][split]["shards"]
                for entry, s in zip(entries, shards):
                    entry["path"] = s.path.split("/", 1)[1]
            want[f"{c.name}/manifest.json"] = (json.dumps(am, ensure_ascii=False, indent=1,
                                                          sort_keys=True) + "\n").encode()
    return want


def _same(src: Path, dst: Path) -> bool:
    try:
        if os.path.samefile(src, dst):
            return True
        a, b = src.stat(), dst.stat()
        return a.st_size == b.st_size and a.st_mtime_ns == b.st_mtime_ns
    except OSError:
        return False


def stage(want: dict[str, Path | bytes], stage_dir: Path, repo_id: str = "") -> tuple[int, int]:
    """Make ``stage_dir`` hold exactly ``want`` (plus huggingface_hub's ``.cache``): shards by
    hard link (copy across filesystems), generated files written only when they change.
    Returns (hard links made or kept, copies)."""
    stage_dir = Path(stage_dir)
    marker = stage_dir / STAGE_MARKER
    if stage_dir.exists() and any(stage_dir.iterdir()) and not marker.exists():
        raise PublishError(f"--stage-dir {stage_dir} is not empty and is not a sweaug stage "
                           f"folder: refusing to touch it (give an empty or new folder)")
    stage_dir.mkdir(parents=True, exist_ok=True)
    before = marker.read_text().strip().splitlines()[-1:] if marker.exists() else []
    if before and before != [repo_id]:
        # upload_large_folder's per-file state says "committed" without naming the repo
        shutil.rmtree(stage_dir / ".cache" / "huggingface" / "upload", ignore_errors=True)
    marker.write_text(f"a folder staged by `sweaug publish` for\n{repo_id}\n")
    for f in sorted(stage_dir.rglob("*"), reverse=True):  # files that no longer belong
        rel = f.relative_to(stage_dir).as_posix()
        if rel.startswith(".cache/") or rel in (".cache", STAGE_MARKER):
            continue
        if f.is_file() or f.is_symlink():
            if rel not in want:
                f.unlink()
        elif f.is_dir() and not any(f.iterdir()):
            f.rmdir()
    linked = copied = 0
    for rel, src in sorted(want.items()):
        dst = stage_dir / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(src, bytes):
            if not (dst.is_file() and dst.read_bytes() == src):
                tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
                tmp.write_bytes(src)
                os.replace(tmp, dst)
            continue
        if dst.exists() and _same(src, dst):
            if os.path.samefile(src, dst):
                linked += 1
            else:
                copied += 1
            continue
        tmp = dst.with_name(f".{dst.name}.tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        try:
            os.link(src, tmp)
            linked += 1
        except OSError:  # another filesystem, or no hard links there
            shutil.copy2(src, tmp)
            copied += 1
        os.replace(tmp, dst)
    return linked, copied


def staged_listing(stage_dir: Path) -> list[tuple[str, int]]:
    """What an upload of ``stage_dir`` sends: every file but huggingface_hub's cache and the
    stage marker."""
    out = []
    for f in sorted(Path(stage_dir).rglob("*")):
        rel = f.relative_to(stage_dir).as_posix()
        if f.is_file() and not rel.startswith(".cache/") and rel != STAGE_MARKER:
            out.append((rel, f.stat().st_size))
    return out
