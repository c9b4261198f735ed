"""One build: sources -> normalized records -> filters + leakage guard -> deterministic
partitions -> an executor (local process pool) -> shards -> manifest.

Resume: every finished partition leaves a record under ``<out>/.sweaug/parts``; a re-run with
the same inputs reuses every partition whose record and shards (checked by sha256) are intact
and builds the rest. Shards are staged under ``<out>/.sweaug/staging`` and moved to their
final names ``<out>/<source>/<split>-NNNNNN.tar`` once every partition of the build is done;
``manifest.json`` is written last, atomically.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import __version__
from .filters import FilterConfig, text_reason
from .leakage import LeakageGuard
from .partitions import Partition, Settings, make_partitions, record_path, run_in_pool, \
    run_partition, staging_name
from .records import EVAL_SPLITS, Drop, SourceError, Utterance
from .shards import SHARD_BYTES, SHARD_SAMPLES, atomic_write_bytes, sha256_file
from .sources import SourceOptions, get_source

log = logging.getLogger("sweaug.build")
SHARD_NAME = re.compile(r"^(train|validation|test)-(\d{6})\.tar$")


@dataclass
class BuildConfig:
    out: Path
    sources: dict[str, SourceOptions]
    workers: int = 1
    shard_samples: int = SHARD_SAMPLES
    shard_bytes: int = SHARD_BYTES
    filters: FilterConfig = field(default_factory=FilterConfig)
    eval_dirs: tuple[Path, ...] = ()
    strict: bool = False


def collect(cfg: BuildConfig, sources: dict) -> tuple[dict, list[Drop], list[dict], dict]:
    """Read every source's records, normalize text, apply text filters and the leakage guard.

    Returns (kept records per (source, split), drops, leakage rows, per-source info).
    """
    from .text import normalized_text, rejected_chars, target_text

    records: dict[tuple[str, str], list[Utterance]] = defaultdict(list)
    drops: list[Drop] = []
    info = {}
    for name, src in sources.items():
        src.download()
        for split in src.splits:
            for item in src.records(split):
                if isinstance(item, Drop):
                    drops.append(item)
                    continue
                target = target_text(item.text)
                records[(name, split)].append(
                    item.with_text(target, normalized_text(target, item.language)))
        drops += src.archive_drops()
        info[name] = {"release": src.release(), "count_check": src.count_check()}
        for split, c in info[name]["count_check"].items():
            if c["expected"] != c["read"]:
                log.warning("%s %s: read %d rows, the release lists %d", name, split, c["read"],
                            c["expected"])

    guard = LeakageGuard()
    for eval_dir in cfg.eval_dirs:
        n = guard.register_shards(Path(eval_dir))
        log.info("registered %d evaluation samples from %s", n, eval_dir)
    kept: dict[tuple[str, str], list[Utterance]] = {}
    # evaluation splits first: they are registered before any training record is judged
    for (name, split), recs in sorted(records.items(), key=lambda kv: kv[0][1] == "train"):
        train = split not in EVAL_SPLITS
        out = []
        for u in recs:
            why = text_reason(u, train, rejected_chars(u.target, u.language))
            if why:
                drops.append(Drop(name, split, u.source_id, *why))
                continue
            if not train:
                guard.register_utterance(u)
            out.append(u)
        kept[(name, split)] = out
    leaks: list[dict] = []
    for (name, split), recs in kept.items():
        if split in EVAL_SPLITS:
            continue
        ok = []
        for u in recs:
            leak = guard.check(u)
            if leak:
                reason, where = leak
                drops.append(Drop(name, split, u.source_id, reason, where))
                leaks.append({"source": name, "split": split, "key": u.key,
                              "source_id": u.source_id, "reason": reason, "matches": where,
                              "text": u.target})
            else:
                ok.append(u)
        kept[(name, split)] = ok
    return kept, drops, leaks, info


def _plan(kept: dict, cfg: BuildConfig) -> list[Partition]:
    parts = []
    for (name, split) in sorted(kept):
        parts += make_partitions(kept[(name, split)], cfg.shard_samples)
    return parts


def _final_dir(out: Path, source: str) -> Path:
    return out / source


def _existing_final_shards(out: Path, sources) -> dict[str, Path]:
    """sha256 -> path of every final shard already present (for resume)."""
    found = {}
    for name in sources:
        d = _final_dir(out, name)
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if SHARD_NAME.match(p.name):
                    found[sha256_file(p)] = p
    return found


def _is_done(part: Partition, settings: Settings, state: Path, finals: dict) -> dict | None:
    rec_file = record_path(state, part)
    if not rec_file.exists():
        return None
    try:
        rec = json.loads(rec_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("input") != part.input_hash(settings):
        return None
    for j, s in enumerate(rec["shards"]):
        staged = staging_name(state / "staging", part, j)
        if s["sha256"] in finals:
            continue
        if not staged.exists() or sha256_file(staged) != s["sha256"]:
            return None
    return rec


def _clean_temporaries(out: Path) -> None:
    for p in out.rglob(".*.tmp*"):
        if p.is_file():
            p.unlink()


def build(cfg: BuildConfig, progress: Callable[[float, float], None] | None = None) -> dict:
    """Run a build; returns the manifest (also written to ``<out>/manifest.json``)."""
    from .text import NORMALIZER_VERSION

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    state = out / ".sweaug"
    _clean_temporaries(out)
    sources = {name: get_source(name, opts) for name, opts in cfg.sources.items()}
    kept, drops, leaks, info = collect(cfg, sources)
    settings = Settings(cfg.shard_samples, cfg.shard_bytes, cfg.filters.as_dict(),
                        NORMALIZER_VERSION, __version__, cfg.strict)
    parts = _plan(kept, cfg)
    finals = _existing_final_shards(out, sources)
    results: dict[str, dict] = {}
    todo = []
    for p in parts:
        rec = _is_done(p, settings, state, finals)
        if rec is not None:
            results[p.name] = rec
        else:
            todo.append(p)
    log.info("%d partitions: %d reused, %d to build", len(parts), len(results), len(todo))

    total = sum(_estimate_seconds(p) for p in parts)
    done = sum(_estimate_seconds(p) for p in parts if p.name in results)
    if progress:
        progress(done, total)
    if cfg.workers <= 1 or len(todo) <= 1:
        for p in todo:
            results[p.name] = run_partition(p, settings, state)
            done += _estimate_seconds(p)
            if progress:
                progress(done, total)
    else:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        import multiprocessing as mp

        # largest first, so that the last partition to finish is a small one
        order = sorted(todo, key=_estimate_seconds, reverse=True)
        with ProcessPoolExecutor(max_workers=cfg.workers,
                                 mp_context=mp.get_context("forkserver")) as pool:
            futures = {pool.submit(run_in_pool, (p, settings, state)): p for p in order}
            for fut in as_completed(futures):
                p = futures[fut]
                results[p.name] = fut.result()
                done += _estimate_seconds(p)
                if progress:
                    progress(done, total)

    shard_index = _finalize(out, parts, results, state, finals, sources)
    manifest = _manifest(cfg, sources, info, parts, results, shard_index, drops, leaks, settings)
    _write_leakage(out / "leakage.tsv", leaks)
    atomic_write_bytes(out / "manifest.json",
                       json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode())
    return manifest


def _estimate_seconds(p: Partition) -> float:
    return sum(u.duration if u.duration else 5.0 for u in p.records)


def _finalize(out: Path, parts: list[Partition], results: dict, state: Path, finals: dict,
              sources) -> dict[str, list[dict]]:
    """Give every shard its final name ``<split>-NNNNNN.tar`` (partition order), moving staged
    files into place; remove shards of earlier builds that this build does not contain."""
    plan: list[tuple[Path, Path | None, dict]] = []  # (final path, where it is now, info)
    counters: Counter = Counter()
    index: dict[str, list[dict]] = defaultdict(list)
    for p in parts:
        for j, s in enumerate(results[p.name]["shards"]):
            n = counters[(p.source, p.split)]
            counters[(p.source, p.split)] += 1
            final = _final_dir(out, p.source) / f"{p.split}-{n:06d}.tar"
            current = finals.get(s["sha256"]) or staging_name(state / "staging", p, j)
            plan.append((final, current, s))
            index[f"{p.source}/{p.split}"].append(
                {"path": f"{p.source}/{final.name}", "sha256": s["sha256"],
                 "samples": s["samples"], "bytes": s["bytes"]})
    wanted = {final for final, _, _ in plan}
    # phase 1: move every shard that is not already in place to a unique holding name
    holding = state / "holding"
    moves = []
    for final, current, s in plan:
        if current == final:
            continue
        holding.mkdir(parents=True, exist_ok=True)
        held = holding / f"{s['sha256']}.tar"
        if current.exists():
            os.replace(current, held)
        moves.append((held, final))
    # remove shards of earlier builds that are not part of this one
    for name in sources:
        d = _final_dir(out, name)
        if d.is_dir():
            for f in d.iterdir():
                if SHARD_NAME.match(f.name) and f not in wanted:
                    f.unlink()
    # phase 2: into place
    for held, final in moves:
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(held, final)
    # what earlier, different builds left in the state folder is of no further use
    current = {record_path(state, p) for p in parts}
    for f in (state / "parts").rglob("*.json") if (state / "parts").is_dir() else ():
        if f not in current:
            f.unlink()
    for f in (state / "staging").rglob("*.tar") if (state / "staging").is_dir() else ():
        f.unlink()
    return index


def _manifest(cfg, sources, info, parts, results, shard_index, drops, leaks, settings) -> dict:
    from .catalog import load

    all_drops = list(drops)
    per_split: dict[tuple[str, str], dict] = {}
    for p in parts:
        r = results[p.name]
        s = per_split.setdefault((p.source, p.split), {"samples": 0, "seconds": 0.0,
                                                       "speakers": set(), "genders": Counter()})
        s["samples"] += r["samples"]
        s["seconds"] += r["seconds"]
        s["speakers"].update(r["speakers"])
        s["genders"].update(r["genders"])
        all_drops += [Drop(**d) for d in r["drops"]]
    drop_counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for d in all_drops:
        drop_counts[(d.source, d.split)][d.reason] += 1
    out_sources = {}
    for name, src in sources.items():
        cat = load(name)
        splits = {}
        for split in sorted({sp for (n, sp) in per_split if n == name} |
                            {sp for (n, sp) in drop_counts if n == name}):
            s = per_split.get((name, split), {"samples": 0, "seconds": 0.0, "speakers": set(),
                                              "genders": Counter()})
            splits[split] = {
                "samples": s["samples"], "hours": round(s["seconds"] / 3600, 4),
                "speakers": len(s["speakers"]), "genders": dict(sorted(s["genders"].items())),
                "drops": dict(sorted(drop_counts[(name, split)].items())),
                "shards": shard_index.get(f"{name}/{split}", []),
            }
        out_sources[name] = {
            "release": info[name]["release"], "language": src.opts.language,
            "license": cat.get("license", ""), "citation": cat.get("citation", ""),
            "homepage": cat.get("homepage", ""), "splits": splits,
            "count_check": info[name]["count_check"],
        }
    return {
        "format": "sweaug-corpus/1", "sweaug_version": __version__,
        "normalizer_version": settings.normalizer,
        "settings": {"shard_samples": cfg.shard_samples, "shard_bytes": cfg.shard_bytes,
                     "filters": cfg.filters.as_dict(),
                     "eval": [str(p) for p in cfg.eval_dirs]},
        "sources": out_sources,
        "drops": sorted((d.as_dict() for d in all_drops),
                        key=lambda d: (d["source"], d["split"], d["reason"], d["item"])),
        "leakage": {"file": "leakage.tsv", "count": len(leaks)},
    }


def _write_leakage(path: Path, leaks: list[dict]) -> None:
    cols = ["source", "split", "key", "source_id", "reason", "matches", "text"]
    lines = ["\t".join(cols)]
    for row in sorted(leaks, key=lambda r: (r["source"], r["key"])):
        lines.append("\t".join(str(row[c]).replace("\t", " ").replace("\n", " ") for c in cols))
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
