"""Running shard-writing jobs: resume, an executor, final names, cleanup.

A job (a build partition, an augmentation of one input shard) writes its shards to a staging
area and leaves a record; this module decides which jobs are already done (record present,
same input hash, shards intact: by sha256 in a local folder, by size on an fsspec store whose
objects are whole), runs the rest on an executor (executors.py: a local process pool or Ray
tasks), then gives every shard its final name ``<out>/<group>/<split>-NNNNNN.tar`` in job order
and removes what earlier, different runs left. The output is a local folder or an fsspec URL
(storage.py). Used by ``build`` and ``augment`` alike.
"""
from __future__ import annotations

import json
import logging
import re
from collections import Counter, defaultdict
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

log = logging.getLogger("sweaug.jobs")
STATE = ".sweaug"  # resume state under the output root
FINALS = f"{STATE}/finals.json"  # on an fsspec store: final shard -> sha256, bytes
SHARD_NAME = re.compile(r"^(train|validation|test)-(\d{6})\.tar$")


class Job(Protocol):
    group: str  # output sub-folder ("" = the output folder itself)
    split: str
    index: int

    @property
    def name(self) -> str: ...
    @property
    def weight(self) -> float: ...  # estimated audio seconds, for progress and scheduling
    def input_hash(self) -> str: ...
    def run(self, state: Path) -> dict: ...


def staging_name(state: Path, job, j: int) -> Path:
    return state / "staging" / (job.group or "_") / job.split / f"{job.index:05d}-{j:03d}.tar"


def record_path(state: Path, job) -> Path:
    return state / "parts" / (job.group or "_") / job.split / f"{job.index:05d}.json"


def write_record(state: Path, job, result: dict) -> None:
    from ..files import atomic_write_bytes

    atomic_write_bytes(record_path(state, job),
                       json.dumps(result, ensure_ascii=False, sort_keys=True).encode())


def execute(job, store) -> dict:
    """Run one job against ``store``; returns the job's record. What every executor runs (handed
    in by ``run_jobs``: executors.py does not import this module)."""
    if store.local is not None:
        return job.run(store.local / STATE)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="sweaug-job-") as tmp:
        state = Path(tmp)
        result = job.run(state)
        for j in range(len(result["shards"])):
            store.put_file(staging_name(state, job, j),
                           staging_name(Path(STATE), job, j).as_posix())
        store.put_file(record_path(state, job), record_path(Path(STATE), job).as_posix())
    return result


def _rel(p: Path) -> str:
    return p.as_posix()


def _known_finals(store, groups, listing: dict[str, int]) -> dict[str, str]:
    """sha256 -> relative path of every complete shard already in the output under a final
    name, or held during an interrupted finalization (``holding/<sha256>.tar``). A local
    folder hashes its shards; a store trusts its last ``finals.json`` where the object is
    still there with the same size (objects are whole; see storage.py)."""
    found = {}
    held = {r: n for r, n in listing.items() if r.startswith(f"{STATE}/holding/")}
    if store.local is not None:
        for g in sorted(groups):
            for name in store.list_dir(g):
                if SHARD_NAME.match(name):
                    rel = f"{g}/{name}" if g else name
                    found[store.sha256(rel)] = rel
        for rel in held:
            found.setdefault(store.sha256(rel), rel)
        return found
    try:
        index = json.loads(store.read_bytes(FINALS) or b"{}")
    except json.JSONDecodeError:
        index = {}
    for rel, s in sorted(index.items()):
        if listing.get(rel) == s["bytes"]:
            found[s["sha256"]] = rel
    for rel in held:
        found.setdefault(Path(rel).stem, rel)
    return found


def _done(job, store, finals: dict, listing: dict[str, int]) -> dict | None:
    if _rel(record_path(Path(STATE), job)) not in listing:
        return None
    try:
        rec = json.loads(store.read_bytes(_rel(record_path(Path(STATE), job))) or b"")
    except json.JSONDecodeError:
        return None
    if rec.get("input") != job.input_hash():
        return None
    for j, s in enumerate(rec["shards"]):
        if s["sha256"] in finals:
            continue
        staged = _rel(staging_name(Path(STATE), job, j))
        if listing.get(staged) != s["bytes"]:
            return None
        if store.local is not None and store.sha256(staged) != s["sha256"]:
            return None
    return rec


@dataclass(frozen=True)
class JobRef:
    """What is kept of a job once it ran: enough to name and index its shards."""

    group: str
    split: str
    index: int
    name: str


def run_jobs(out, jobs: Iterable, workers: int = 1,
             progress: Callable[[float, float], None] | None = None, total: float | None = None,
             groups: Iterable[str] | None = None, executor=None
             ) -> tuple[dict, list[JobRef], dict]:
    """Run (or reuse) every job of ``jobs`` (consumed lazily: only a few jobs, with their
    records, are in memory at a time). Returns (results by job name, the jobs in order, the
    shard index by "group/split"). ``out`` is a folder, an fsspec URL or a store
    (storage.py); ``executor`` (executors.py) defaults to a local pool of ``workers`` and is
    closed at the end. ``groups`` are the output sub-folders jobs may write (known before the
    first job is formed, for resume); ``total`` sizes the progress bar."""
    from .executors import LocalExecutor
    from .storage import OutputLock, open_store

    store = open_store(out)
    lock = OutputLock(store)  # one run at a time; re-entrant (callers may hold it already)
    try:
        store.makedirs()
        lock.__enter__()
    except BaseException:
        if executor is not None:  # handed in, already started
            executor.close()
        raise
    try:
        ex = executor if executor is not None else LocalExecutor(workers)
        try:
            results, refs, finals, groups = _run_all(store, ex, jobs, progress, total, groups)
        finally:
            ex.close()
        return results, refs, _finalize(store, refs, results, finals, groups)
    finally:
        lock.__exit__(None, None, None)


def _run_all(store, ex, jobs, progress, total, groups):
    """run_jobs' work under the lock: remove what a killed run was writing, reuse finished
    jobs, run the rest on ``ex``."""
    from .storage import is_temp

    results: dict[str, dict] = {}
    refs: list[JobRef] = []
    listing = store.files()
    for rel in sorted(listing):  # what a killed run was writing
        if is_temp(Path(rel).name):
            store.remove(rel)
            del listing[rel]
    if groups is None:
        jobs = list(jobs)
        groups = {j.group for j in jobs}
    groups = set(groups)
    finals = _known_finals(store, groups, listing)
    done, reused = 0.0, 0
    total = float(total or 0.0)

    def tick(weight: float) -> None:
        nonlocal done
        done += weight
        if progress:
            progress(done, max(total, done))

    if progress:
        progress(0.0, total)
    pending: dict = {}
    ready: list = []  # formed but not yet submitted: the heaviest goes first (short tail)

    def submit_heaviest() -> None:
        job = max(ready, key=lambda j: j.weight)
        ready.remove(job)
        pending[ex.submit(execute, job, store)] = (job.name, job.weight)

    def collect() -> None:
        for handle, result in ex.wait(pending):
            name, weight = pending.pop(handle)
            results[name] = result
            tick(weight)

    for job in jobs:
        refs.append(JobRef(job.group, job.split, job.index, job.name))
        rec = _done(job, store, finals, listing)
        if rec is not None:
            results[job.name] = rec
            reused += 1
            tick(job.weight)
        elif ex.inline:
            results[job.name] = execute(job, store)
            tick(job.weight)
        else:
            ready.append(job)
            while len(ready) + len(pending) > 2 * ex.slots:  # bounded: jobs hold records
                if len(pending) < ex.slots:
                    submit_heaviest()
                else:
                    collect()
    while ready or pending:
        while ready and len(pending) < ex.slots:
            submit_heaviest()
        collect()
    log.info("%d jobs: %d reused, %d to build", len(refs), reused, len(refs) - reused)
    return results, refs, finals, groups


def _finalize(store, jobs, results, finals, groups) -> dict[str, list[dict]]:
    """Give every shard its final name, in job order; remove what earlier runs left."""
    state = Path(STATE)
    plan, counters, index = [], Counter(), defaultdict(list)
    for job in jobs:
        for j, s in enumerate(results[job.name]["shards"]):
            n = counters[(job.group, job.split)]
            counters[(job.group, job.split)] += 1
            final = f"{job.split}-{n:06d}.tar"
            final = f"{job.group}/{final}" if job.group else final
            plan.append((final, finals.get(s["sha256"]) or _rel(staging_name(state, job, j)), s))
            index[f"{job.group}/{job.split}" if job.group else job.split].append(
                {"path": final, "sha256": s["sha256"], "samples": s["samples"],
                 "bytes": s["bytes"]})
    wanted = {final for final, _, _ in plan}
    moves = [(current, final, s) for final, current, s in plan if current != final]
    stale = [f"{g}/{name}" if g else name for g in sorted(groups) for name in store.list_dir(g)
             if SHARD_NAME.match(name) and (f"{g}/{name}" if g else name) not in wanted]
    if store.local is None and (moves or stale):  # stale until rewritten at the end
        store.remove(FINALS)
    for i, (current, final, s) in enumerate(moves):  # phase 1: final-named shards out of the way
        if not current.startswith(f"{STATE}/"):
            held = _rel(state / "holding" / f"{s['sha256']}.tar")
            store.move(current, held)
            moves[i] = (held, final, s)
    for rel in stale:  # shards of earlier runs that this one does not contain
        store.remove(rel)
    for current, final, _ in moves:  # phase 2: into place (staged shards move only once)
        store.move(current, final)
    current_records = {_rel(record_path(state, j)) for j in jobs}
    for rel in sorted(store.files(f"{STATE}/parts")):
        if rel.endswith(".json") and rel not in current_records:
            store.remove(rel)
    for prefix in ("staging", "holding"):
        for rel in sorted(store.files(f"{STATE}/{prefix}")):
            store.remove(rel)
    if store.local is None and (moves or stale or not store.exists(FINALS)):
        store.write_bytes(FINALS, json.dumps(
            {f: {"sha256": s["sha256"], "bytes": s["bytes"]} for f, _, s in plan},
            sort_keys=True, indent=0).encode())
    return index


class ShardJob:
    """What a job of one input shard (``augment``, ``windows``, ``label``) shares: its name
    ``<split>/<index>`` and its weight (the shard's samples); a dataclass with ``split``,
    ``index`` and ``samples`` fields mixes it in."""

    @property
    def name(self) -> str:
        return f"{self.split}/{self.index:05d}"

    @property
    def weight(self) -> float:
        return float(self.samples)


def clear_staging(state: Path, job) -> None:
    """Remove what an earlier attempt of ``job`` staged (a killed or failed run)."""
    for old in staging_name(state, job, 0).parent.glob(f"{job.index:05d}-*.tar"):
        old.unlink()


def staged(shards) -> list[dict]:
    """A job record's ``shards``: the staged name, sha256, samples and bytes of each."""
    return [{"staged": s.path.name, "sha256": s.sha256, "samples": s.samples, "bytes": s.bytes}
            for s in shards]


def split_results(results: dict, jobs, split: str) -> tuple[list[dict], dict[str, int], list]:
    """(the records of ``split``'s jobs in job order, their drops counted by reason, the drops)."""
    rs = [results[j.name] for j in jobs if j.split == split]
    counts: dict[str, int] = {}
    drops = []
    for r in rs:
        for d in r["drops"]:
            counts[d["reason"]] = counts.get(d["reason"], 0) + 1
            drops.append(d)
    return rs, dict(sorted(counts.items())), drops


def check_shard_limits(shard_samples: int, shard_bytes: int) -> None:
    """Refuse, before any job, output shards that could hold nothing."""
    if shard_samples < 1 or shard_bytes < 4096:
        from ..records import ConfigError

        raise ConfigError(f"a shard must hold at least one sample and 4 KiB (got "
                          f"shard_samples={shard_samples}, shard_bytes={shard_bytes})")


def write_manifest(out: Path, manifest: dict) -> None:
    """``<out>/manifest.json`` of a per-shard stage, atomically (sorted keys, one indent)."""
    from ..files import atomic_write_bytes

    atomic_write_bytes(Path(out) / "manifest.json", json.dumps(
        manifest, ensure_ascii=False, indent=1, sort_keys=True).encode())


def derived_manifest(fmt: str, folder: Path, out: Path, mpath: Path, manifest: dict,
                     source: str, made: str, splits: dict, drops: list,
                     leakage: dict | None = None, carried: dict | None = None,
                     **stage) -> dict:
    """The manifest of a folder a per-shard stage made from ``folder`` (whose manifest
    ``manifest`` at ``mpath`` lists it as ``source``): the same frame for augment, windows and
    label — format, versions, where the input is (relative to ``out``, with its manifest's
    sha256), one source named after ``out`` with the input's licence and citation and
    ``made`` (how) in its release, the splits, the drops in (split, item) order, the leakage —
    plus the stage's own ``stage`` entries; ``carried``: keys of the input's source entry that
    stay true of the output."""
    import os

    from .. import __version__
    from ..files import sha256_file

    src = manifest["sources"][source]
    out = Path(out)
    return {
        "format": fmt, "sweaug_version": __version__,
        "normalizer_version": manifest.get("normalizer_version", ""),
        "input": {"folder": os.path.relpath(folder, out), "source": source,
                  "manifest": os.path.relpath(mpath, out), "manifest_sha256": sha256_file(mpath)},
        **stage,
        "sources": {out.name: {"release": f"{source} {src.get('release', '')}, {made}",
                               "language": src.get("language", ""),
                               "license": src.get("license", ""),
                               "citation": src.get("citation", ""), "splits": splits,
                               **(carried or {})}},
        "drops": sorted(drops, key=lambda d: (d["split"], d["item"])),
        "leakage": leakage or {"file": "", "count": 0},
    }
