"""The page of a ``sweaug build`` output: per source and split the counts of the manifest,
duration and characters-per-second histograms from the shards, drops by reason, the leakage
list, and a seeded sample of rows with their audio; augmented folders inside the corpus root
get their own sections (see augmented.py)."""
from __future__ import annotations

import logging
from pathlib import Path

from .data import (CORPUS_FORMAT, AudioSink, ViewError, cps, load_json, pick, read_samples,
                   scan_meta)

log = logging.getLogger("sweaug.view")

DROP_EXAMPLES = 200  # drop items listed per source (counts are always complete)
LEAKAGE_ROWS = 1000  # leakage.tsv rows shown (the count is always complete)


def read_corpus_manifest(root: Path) -> dict:
    m = load_json(root / "manifest.json")
    if m.get("format") != CORPUS_FORMAT or not isinstance(m.get("sources"), dict):
        raise ViewError(f"{root / 'manifest.json'} is not a `sweaug build` manifest "
                        f"(format {m.get('format')!r}, expected {CORPUS_FORMAT!r})")
    return m


def genders(counts: dict, total: int) -> list[dict]:
    return [{"gender": g, "n": n, "pct": 100.0 * n / total if total else 0.0}
            for g, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def sample_row(meta: dict, src: str | None) -> dict:
    c = cps(meta)
    return {"key": meta.get("key", ""), "src": src, "duration": meta.get("duration"),
            "cps": c, "speaker": str(meta.get("speaker", "")), "gender": meta.get("gender", ""),
            "text": meta.get("text", ""), "normalized": meta.get("text_normalized", "")}


def split_samples(shards: list[Path], n_listed: int, n: int, seed: int, scope: tuple[str, ...],
                  sink: AudioSink) -> tuple[list[dict], list[float], list[float], int]:
    """(sample rows, durations, cps values, samples found) of one split's shards. The rows are
    drawn among the ``n_listed`` samples the manifest lists (only those are kept while the
    shards are scanned: the memory does not grow with the split)."""
    chosen_idx = set(pick(n_listed, n, seed, *scope))
    durations, rates, chosen = [], [], []
    found = 0
    for i, meta in enumerate(scan_meta(shards)):
        found += 1
        d = meta.get("duration")
        if isinstance(d, (int, float)):
            durations.append(float(d))
        c = cps(meta)
        if c is not None:
            rates.append(c)
        if i in chosen_idx:
            chosen.append(meta)
    got = read_samples(shards, {m["key"] for m in chosen}) if sink.enabled and chosen else {}
    rows = [sample_row(m, sink.src(m["key"], got.get(m["key"], {}).get("flac")))
            for m in chosen]
    return rows, durations, rates, found


def source_section(root: Path, name: str, src: dict, manifest: dict, samples: int, seed: int,
                   sink: AudioSink) -> dict:
    from .plots import histograms

    rows, per_split, sample_tables, warnings = [], {}, [], []
    for split, s in src.get("splits", {}).items():
        shards = [root / sh["path"] for sh in s.get("shards", [])]
        table, durations, rates, found = split_samples(shards, s.get("samples", 0), samples,
                                                       seed, (name, split), sink)
        if found != s.get("samples"):
            warnings.append(f"{name}/{split}: the shards hold {found} samples, the manifest "
                            f"says {s.get('samples')}")
        per_split[split] = (durations, rates)
        rows.append({"split": split, "samples": s.get("samples", 0), "hours": s.get("hours", 0.0),
                     "speakers": s.get("speakers", 0),
                     "genders": genders(s.get("genders", {}), s.get("samples", 0)),
                     "shards": len(s.get("shards", [])),
                     "dropped": sum(s.get("drops", {}).values())})
        if samples:
            sample_tables.append({"split": split, "rows": table, "total": found})
    reasons = sorted({r for s in src.get("splits", {}).values() for r in s.get("drops", {})})
    drop_table = [{"reason": r, "counts": {sp: s.get("drops", {}).get(r, 0)
                                           for sp, s in src.get("splits", {}).items()}}
                  for r in reasons]
    items = [d for d in manifest.get("drops", []) if d.get("source") == name]
    return {
        "name": name, "release": src.get("release", ""), "license": src.get("license", ""),
        "language": src.get("language", ""), "homepage": src.get("homepage", ""),
        "rows": rows, "total": {"samples": sum(r["samples"] for r in rows),
                                "hours": sum(r["hours"] for r in rows),
                                "dropped": sum(r["dropped"] for r in rows)},
        "hist": histograms(f"{name}: durations and speaking rate", per_split),
        "splits": list(src.get("splits", {})), "drop_table": drop_table,
        "drop_items": items[:DROP_EXAMPLES], "drop_items_more": max(0, len(items) - DROP_EXAMPLES),
        "samples": sample_tables, "warnings": warnings,
    }


def read_leakage(root: Path, count: int, source: str | None) -> dict:
    path = root / "leakage.tsv"
    rows: list[dict] = []
    if path.exists():
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        head = lines[0].split("\t") if lines else []
        for line in lines[1:]:
            if line.strip():
                row = dict(zip(head, line.split("\t")))
                if source is None or row.get("source") == source:
                    rows.append(row)
    elif count:
        log.warning("%s is missing (the manifest counts %d leakage drops)", path, count)
    return {"count": count if source is None else len(rows), "rows": rows[:LEAKAGE_ROWS],
            "more": max(0, len(rows) - LEAKAGE_ROWS), "file": str(path),
            "missing": not path.exists()}


def corpus_page(root: Path, samples: int, seed: int, sink: AudioSink,
                only: str | None = None) -> dict:
    """The page context of a corpus root (every source and every augmented folder in it), or of
    one source folder of it (``only``)."""
    from .augmented import augmented_folders, augmented_section

    manifest = read_corpus_manifest(root)
    names = [only] if only else list(manifest["sources"])
    sections = [source_section(root, n, manifest["sources"][n], manifest, samples, seed, sink)
                for n in names]
    aug = [augmented_section(f, samples, seed, sink) for f in augmented_folders(root)
           if only is None or load_json(f / "manifest.json").get("input", {}).get("source") == only]
    title = f"{root.name}/{only}" if only else root.name
    return {
        "kind": "source" if only else "corpus", "title": title, "path": str(root / only if only
                                                                            else root),
        "manifest": {"format": manifest.get("format"),
                     "sweaug_version": manifest.get("sweaug_version", ""),
                     "normalizer_version": manifest.get("normalizer_version", ""),
                     "filters": manifest.get("settings", {}).get("filters", {})},
        "sources": sections, "augmented": aug,
        "total": {"samples": sum(s["total"]["samples"] for s in sections),
                  "hours": sum(s["total"]["hours"] for s in sections)},
        "leakage": read_leakage(root, manifest.get("leakage", {}).get("count", 0), only),
        "samples_per_split": samples, "seed": seed,
    }
