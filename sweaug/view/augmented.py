"""The section of a ``sweaug augment`` output folder: the recipe, per split the counts of its
manifest and how often each transform fired, and a seeded sample of originals shown side by
side with their augmented copies, each copy with the transforms and parameters applied to it."""
from __future__ import annotations

import json
from pathlib import Path

from .data import (AUGMENTED_FORMAT, CORPUS_FORMAT, AudioSink, ViewError, load_json, pick,
                   read_samples, scan_meta)


def augmented_folders(root: Path) -> list[Path]:
    """The augmented folders directly inside a corpus root, by name."""
    out = []
    for f in sorted(p for p in root.iterdir() if p.is_dir()):
        mpath = f / "manifest.json"
        if mpath.is_file():
            try:
                fmt = json.loads(mpath.read_text(encoding="utf-8")).get("format")
            except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
                fmt = None
            if fmt == AUGMENTED_FORMAT:
                out.append(f)
    return out


def read_augmented_manifest(folder: Path) -> dict:
    m = load_json(folder / "manifest.json")
    if m.get("format") != AUGMENTED_FORMAT or len(m.get("sources") or {}) != 1:
        raise ViewError(f"{folder / 'manifest.json'} is not a `sweaug augment` manifest "
                        f"(format {m.get('format')!r}, expected {AUGMENTED_FORMAT!r})")
    return m


def _input(folder: Path, m: dict, override: Path | None) -> tuple[Path, dict, list[str]]:
    """(input manifest path, the input source's splits, notes) of an augmented folder."""
    from ..files import sha256_file

    inp = m.get("input", {})
    source = inp.get("source", "")
    if override is not None:
        override = Path(override)
        cands = [override / "manifest.json", override.parent / "manifest.json"]
        mpath = next((c for c in cands if c.is_file()), None)
        if mpath is None:
            raise ViewError(f"--corpus {override}: no manifest.json there or one level up")
    else:
        mpath = folder / inp.get("manifest", "../manifest.json")
        if not mpath.is_file():
            raise ViewError(
                f"{folder}: the corpus it was augmented from is not where its manifest says "
                f"({inp.get('manifest')} relative to it, i.e. {mpath.resolve()}): was it moved? "
                f"Pass --corpus DIR (the corpus root or the {source!r} source folder), or "
                f"--audio none to show the copies without their originals")
    im = load_json(mpath)
    if im.get("format") != CORPUS_FORMAT or source not in im.get("sources", {}):
        raise ViewError(f"{mpath} is not the `sweaug build` manifest of source {source!r} that "
                        f"{folder} was augmented from")
    notes = []
    if inp.get("manifest_sha256") and sha256_file(mpath) != inp["manifest_sha256"]:
        notes.append(f"{mpath} changed since this folder was augmented (its sha256 differs from "
                     f"the one recorded): the originals shown may not be the ones augmented")
    return mpath, im["sources"][source]["splits"], notes


def _parameters(text) -> list[dict]:
    try:
        params = json.loads(text) if isinstance(text, str) else dict(text or {})
    except (json.JSONDecodeError, TypeError, ValueError):
        return [{"name": "parameters", "value": str(text)}]
    out = []
    for k, v in params.items():
        if isinstance(v, float):
            v = f"{v:.4g}"
        out.append({"name": k, "value": v if isinstance(v, str) else json.dumps(v)})
    return out


def augmented_section(folder: Path, samples: int, seed: int, sink: AudioSink,
                      input_override: Path | None = None) -> dict:
    m = read_augmented_manifest(folder)
    name, info = next(iter(m["sources"].items()))
    aug = m.get("augment", {})
    inp = m.get("input", {})
    notes: list[str] = []
    in_splits: dict = {}
    in_base = None
    if sink.enabled and samples:
        mpath, in_splits, notes = _input(folder, m, input_override)
        in_base = mpath.parent
    rows, tables = [], []
    for split, s in info.get("splits", {}).items():
        shards = [folder / sh["path"] for sh in s.get("shards", [])]
        groups: dict[str, list[str]] = {}  # original key -> its copies' keys, in shard order
        fired: dict[str, int] = {}
        found = 0
        for meta in scan_meta(shards):
            found += 1
            for t in (meta.get("augment") or {}).get("applied") or []:
                fired[t.get("name", "?")] = fired.get(t.get("name", "?"), 0) + 1
            key = str(meta.get("key", ""))
            groups.setdefault(meta.get("original_key") or key.rsplit("-aug", 1)[0], []).append(key)
        if found != s.get("samples"):
            notes.append(f"{name}/{split}: the shards hold {found} samples, the manifest says "
                         f"{s.get('samples')}")
        rows.append({"split": split, "samples": s.get("samples", 0), "hours": s.get("hours", 0.0),
                     "originals": len(groups), "augmented": s.get("augmented", 0),
                     "unchanged": s.get("unchanged", 0), "shards": len(s.get("shards", [])),
                     "dropped": sum(s.get("drops", {}).values()),
                     "drops": s.get("drops", {}), "fired": sorted(fired.items())})
        if not samples:
            continue
        originals = list(groups)
        chosen = [originals[i] for i in pick(len(originals), samples, seed, name, split)]
        got = read_samples(shards, {c for o in chosen for c in groups[o]}, audio=sink.enabled)
        orig_got = {}
        if sink.enabled and chosen:
            if split not in in_splits:
                notes.append(f"{name}/{split}: the input has no split {split!r}")
            else:
                in_shards = [in_base / sh["path"] for sh in in_splits[split].get("shards", [])]
                orig_got = read_samples(in_shards, set(chosen))
                lost = [o for o in chosen if o not in orig_got]
                if lost:
                    notes.append(f"{name}/{split}: {len(lost)} original(s) not found in the "
                                 f"input shards (e.g. {lost[0]}): was the input rebuilt?")
        table = []
        for o in chosen:
            copies = []
            for key in groups[o]:
                meta = got.get(key, {}).get("json") or {}
                a = meta.get("augment") or {}
                copies.append({"key": key, "index": a.get("copy"),
                               "duration": meta.get("duration"),
                               "src": sink.src(key, got.get(key, {}).get("flac")),
                               "applied": [{"name": t.get("name", "?"),
                                            "parameters": _parameters(t.get("parameters"))}
                                           for t in a.get("applied") or []]})
            first = got.get(groups[o][0], {}).get("json") or {}
            ometa = orig_got.get(o, {}).get("json") or {}
            table.append({
                "key": o, "text": ometa.get("text", first.get("text", "")),
                "normalized": ometa.get("text_normalized", first.get("text_normalized", "")),
                "duration": ometa.get("duration"),
                "src": sink.src(o, orig_got.get(o, {}).get("flac")),
                "copies": sorted(copies, key=lambda c: (c["index"] is None, c["index"] or 0))})
        tables.append({"split": split, "rows": table, "total": len(groups)})
    return {
        "name": name, "folder": str(folder), "release": info.get("release", ""),
        "license": info.get("license", ""),
        "input": {"source": inp.get("source", ""), "folder": inp.get("folder", ""),
                  "manifest": inp.get("manifest", "")},
        "recipe": {"name": aug.get("recipe", ""), "file": aug.get("recipe_file", ""),
                   "sha256": aug.get("recipe_sha256", ""), "seed": aug.get("seed"),
                   "copies": aug.get("copies"),
                   "transforms": [{"name": t.get("name", "?"), "line": t.get("line"),
                                   "parameters": _parameters(t.get("parameters"))}
                                  for t in aug.get("transforms", [])]},
        "rows": rows, "total": {"samples": sum(r["samples"] for r in rows),
                                "hours": sum(r["hours"] for r in rows)},
        "samples": tables, "notes": notes,
        "drop_items": m.get("drops", [])[:200],
    }


def augmented_page(folder: Path, samples: int, seed: int, sink: AudioSink,
                   input_override: Path | None = None) -> dict:
    sec = augmented_section(folder, samples, seed, sink, input_override)
    return {"kind": "augmented", "title": folder.name, "path": str(folder), "sources": [],
            "augmented": [sec], "total": sec["total"], "leakage": None, "manifest": None,
            "samples_per_split": samples, "seed": seed}
