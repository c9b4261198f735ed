"""One build: sources -> normalized records -> filters + leakage guard -> deterministic
partitions -> an executor (local process pool or Ray, executors.py) -> shards -> manifest.

Resume: every finished partition leaves a record under ``<out>/.sweaug/parts``; a re-run with
the same inputs reuses every partition whose record and shards are intact (checked by sha256;
by size on an fsspec store, whose objects are whole) and builds the rest. Shards are staged under ``<out>/.sweaug/staging`` and moved to their
final names ``<out>/<source>/<split>-NNNNNN.tar`` once every partition of the build is done;
``manifest.json`` is written last, atomically. ``out`` may be an fsspec URL (storage.py).
"""
from __future__ import annotations

import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from .. import __version__
from .filters import FilterConfig, text_reason
from .leakage import LeakageGuard
from .partitions import Partition, Settings, partition_stream
from ..records import EVAL_SPLITS, SPLITS, Drop, Utterance
from .shards import SHARD_BYTES, SHARD_SAMPLES
from ..sources import SourceOptions, get_source

log = logging.getLogger("sweaug.build")


@dataclass
class BuildConfig:
    out: Path | str  # a folder or an fsspec URL (s3://bucket/corpus, file:///..., ...)
    sources: dict[str, SourceOptions]
    workers: int | None = None  # local: processes (default 1); ray: jobs at a time (all CPUs)
    shard_samples: int = SHARD_SAMPLES
    shard_bytes: int = SHARD_BYTES
    filters: FilterConfig = field(default_factory=FilterConfig)
    eval_dirs: tuple[Path, ...] = ()
    strict: bool = False
    executor: str = "local"  # or "ray"
    ray_address: str | None = None  # None: start a local Ray for the build
    retries: int = 3  # Ray task retries per partition
    storage_options: dict = field(default_factory=dict)  # for an fsspec ``out``
    # (train, validation, test) shares of rows for rows without a split (speaker_split.py)
    split_by_speaker: tuple[float, float, float] | None = None
    split_seed: int = 13


def _accepted(src, split: str, guard: LeakageGuard, drops: list[Drop], leaks: list[dict]
              ) -> Iterator[Utterance]:
    """One (source, split)'s records, normalized, through the text filters and the leakage
    guard (evaluation splits are registered as they pass; training records are checked).
    Unlabelled records pass the text filters (filters.py) and register only their speaker: an
    empty text is no sentence (LeakageGuard.register skips it)."""
    from .text import normalized_text, rejected_chars, target_text

    train = split not in EVAL_SPLITS
    for item in src.records(split):
        if isinstance(item, Drop):
            drops.append(item)
            continue
        target = target_text(item.text)
        u = item.with_text(target, normalized_text(target, item.language))
        why = text_reason(u, train, rejected_chars(u.target, u.language))
        if why:
            drops.append(Drop(src.name, split, u.source_id, *why))
            continue
        if not train:
            guard.register_utterance(u)
        else:
            leak = guard.check(u)
            if leak:
                reason, where = leak
                drops.append(Drop(src.name, split, u.source_id, reason, where))
                leaks.append({"source": src.name, "split": split, "key": u.key,
                              "source_id": u.source_id, "reason": reason, "matches": where,
                              "text": u.target})
                continue
        yield u


def _estimate_seconds(options: dict[str, SourceOptions]) -> float:
    """Audio seconds the build will read (metadata only, fresh source objects), for the
    progress bar's total and ETA; clips of unknown length count as 5 s."""
    total = 0.0
    for name, opts in options.items():
        src = get_source(name, opts)
        src.download()
        for split in src.splits:
            for item in src.records(split):
                if isinstance(item, Utterance):
                    total += item.duration or 5.0
    return total


def build(cfg: BuildConfig, progress: Callable[[float, float], None] | None = None) -> dict:
    """Run a build; returns the manifest (also written to ``<out>/manifest.json``).

    An output that is, contains or is inside an input (a source folder, an ``eval_dirs``
    folder) is refused (ConfigError) before anything is written; one build at a time writes an
    output (storage.OutputLock, held until the manifest is written; OutputBusy otherwise).
    """
    from .storage import OutputLock, refuse_overlap

    refuse_overlap(cfg.out, [(f"--{n}-dir", o.path) for n, o in cfg.sources.items()]
                   + [("--eval", p) for p in cfg.eval_dirs])
    with OutputLock(cfg.out, cfg.storage_options):
        return _build(cfg, progress)


def _build(cfg: BuildConfig, progress: Callable[[float, float], None] | None) -> dict:
    """The build itself (see :func:`build`).

    Records stream from the sources into partitions: evaluation splits of every source first
    (registered with the leakage guard as they pass), then the training splits, so that every
    evaluation sentence and speaker is known before the first training record is judged. Only
    the partitions in flight are held in memory.
    """
    from .executors import make_executor
    from .jobs import run_jobs
    from ..sources.speaker_split import check_fractions
    from .storage import fetch_input, open_store
    from .text import NORMALIZER_VERSION

    plan = None  # --split-by-speaker, for the sources with rows without a split (local)
    if cfg.split_by_speaker is not None:
        plan = {"fractions": check_fractions(cfg.split_by_speaker), "seed": cfg.split_seed}
    store = open_store(cfg.out, cfg.storage_options)
    store.makedirs()
    # first, so that a missing Ray or an unreachable cluster fails before any work; the local
    # pool's workers start while the sources are read
    executor = make_executor(cfg.executor, cfg.workers, cfg.ray_address, cfg.retries)
    try:
        options = {name: replace(opts, path=fetch_input(opts.path, opts.cache_dir),
                                 options={**opts.options, "split_by_speaker": plan})
                   for name, opts in cfg.sources.items()}  # URL inputs: into the cache
        sources = {name: get_source(name, opts) for name, opts in options.items()}
        for src in sources.values():
            src.download()
        guard = LeakageGuard()
        for eval_dir in cfg.eval_dirs:
            n = guard.register_shards(Path(eval_dir))
            log.info("registered %d evaluation samples from %s", n, eval_dir)
        total = _estimate_seconds(options) if progress else None
    except BaseException:
        executor.close()
        raise
    settings = Settings(cfg.shard_samples, cfg.shard_bytes, cfg.filters.as_dict(),
                        NORMALIZER_VERSION, __version__, cfg.strict)
    drops: list[Drop] = []
    leaks: list[dict] = []
    order = [(n, sp) for n, src in sources.items() for sp in src.splits if sp in EVAL_SPLITS]
    order += [(n, sp) for n, src in sources.items() for sp in src.splits if sp not in EVAL_SPLITS]

    def jobs() -> Iterator[Partition]:
        for name, split in order:
            yield from partition_stream(_accepted(sources[name], split, guard, drops, leaks),
                                        settings)

    results, refs, shard_index = run_jobs(store, jobs(), progress=progress, total=total,
                                          groups=sources, executor=executor)
    info = {}
    for name, src in sources.items():
        drops += src.archive_drops()
        info[name] = {"release": src.release(), "count_check": src.count_check(),
                      "speaker_split": getattr(src, "speaker_split", lambda: None)(),
                      "unlabelled": bool(getattr(src, "unlabelled", False))}
        for split, c in info[name]["count_check"].items():
            if c["expected"] != c["read"]:
                log.warning("%s %s: read %d rows, the release lists %d", name, split, c["read"],
                            c["expected"])
    manifest = _manifest(cfg, sources, info, refs, results, shard_index, drops, leaks, settings)
    manifest["warnings"] = _no_eval_warnings(manifest, cfg)
    write_leakage(store, leaks)
    store.write_bytes("manifest.json",
                      json.dumps(manifest, ensure_ascii=False, indent=1, sort_keys=True).encode())
    return manifest


def _manifest(cfg, sources, info, parts, results, shard_index, drops, leaks, settings) -> dict:
    from ..sources.catalog import load

    all_drops = list(drops)
    per_split: dict[tuple[str, str], dict] = {}
    for p in parts:
        r = results[p.name]
        s = per_split.setdefault((p.group, p.split), {"samples": 0, "seconds": 0.0,
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
        if info[name]["speaker_split"] is not None:  # rows and speakers it put in each split
            out_sources[name]["speaker_split"] = info[name]["speaker_split"]
        if info[name]["unlabelled"]:  # no transcripts (local.py); absent for labelled sources
            out_sources[name]["unlabelled"] = True
    return {
        "format": "sweaug-corpus/1", "sweaug_version": __version__,
        "normalizer_version": settings.normalizer,
        "settings": {"shard_samples": cfg.shard_samples, "shard_bytes": cfg.shard_bytes,
                     "filters": cfg.filters.as_dict(),
                     "eval": [str(p) for p in cfg.eval_dirs],
                     "split_by_speaker": None if cfg.split_by_speaker is None else {
                         **dict(zip(SPLITS, cfg.split_by_speaker)), "seed": cfg.split_seed,
                         "share_of": "rows"}},
        "sources": out_sources,
        "drops": sorted((d.as_dict() for d in all_drops),
                        key=lambda d: (d["source"], d["split"], d["reason"], d["item"])),
        "leakage": {"file": "leakage.tsv", "count": len(leaks)},
    }


def _no_eval_warnings(manifest: dict, cfg: BuildConfig) -> list[str]:
    """One line per source whose corpus has training samples but no validation or test
    sample: nothing to evaluate on (printed at the end of ``sweaug build``)."""
    out = []
    for name, src in manifest["sources"].items():
        n = {sp: s["samples"] for sp, s in src["splits"].items()}
        if n.get("train") and not any(n.get(sp) for sp in EVAL_SPLITS):
            hint = ""
            if name == "local":
                hint = ("; give its rows a split column, or build with --split-by-speaker "
                        "0.8,0.1,0.1 for a seeded speaker-disjoint split of the rows without one"
                        if cfg.split_by_speaker is None else
                        "; even with --split-by-speaker: too few speakers without a split for one")
            out.append(f"{name}: {n['train']} training samples but no validation or test "
                       f"samples: nothing to evaluate on{hint}")
    return out


def write_leakage(store, leaks: list[dict]) -> None:
    """``leakage.tsv``: one row per record dropped as a leak (build's, and ``sweaug label``'s
    pseudo-labels), with the evaluation sample it matched."""
    cols = ["source", "split", "key", "source_id", "reason", "matches", "text"]
    lines = ["\t".join(cols)]
    for row in sorted(leaks, key=lambda r: (r["source"], r["key"])):
        lines.append("\t".join(str(row[c]).replace("\t", " ").replace("\n", " ") for c in cols))
    store.write_bytes("leakage.tsv", ("\n".join(lines) + "\n").encode())
