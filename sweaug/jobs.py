"""Running shard-writing jobs: resume, a local process pool, final names, cleanup.

A job (a build partition, an augmentation of one input shard) writes its shards to a staging
area and leaves a record; this module decides which jobs are already done (record present,
same input hash, shards intact by sha256), runs the rest on a process pool, then gives every
shard its final name ``<out>/<group>/<split>-NNNNNN.tar`` in job order and removes what earlier,
different runs left. Used by ``build`` and ``augment`` alike.
"""
from __future__ import annotations

import json
import logging
import os
import re
from collections import Counter, defaultdict
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from .shards import sha256_file

log = logging.getLogger("sweaug.jobs")
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
    from .shards import atomic_write_bytes

    atomic_write_bytes(record_path(state, job),
                       json.dumps(result, ensure_ascii=False, sort_keys=True).encode())


def _existing_finals(out: Path, groups) -> dict[str, Path]:
    found = {}
    for g in sorted(groups):
        d = out / g
        if d.is_dir():
            for p in sorted(d.iterdir()):
                if SHARD_NAME.match(p.name):
                    found[sha256_file(p)] = p
    return found


def _done(job, state: Path, finals: dict) -> dict | None:
    try:
        rec = json.loads(record_path(state, job).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if rec.get("input") != job.input_hash():
        return None
    for j, s in enumerate(rec["shards"]):
        if s["sha256"] in finals:
            continue
        staged = staging_name(state, job, j)
        if not staged.exists() or sha256_file(staged) != s["sha256"]:
            return None
    return rec


def _warm() -> None:
    return None


def _pool_run(args):
    job, state = args
    return job.run(state)


@dataclass(frozen=True)
class JobRef:
    """What is kept of a job once it ran: enough to name and index its shards."""

    group: str
    split: str
    index: int
    name: str


def run_jobs(out: Path, jobs: Iterable, workers: int = 1,
             progress: Callable[[float, float], None] | None = None, total: float | None = None,
             groups: Iterable[str] | None = None) -> tuple[dict, list[JobRef], dict]:
    """Run (or reuse) every job of ``jobs`` (consumed lazily: only a few jobs, with their
    records, are in memory at a time). Returns (results by job name, the jobs in order, the
    shard index by "group/split"). ``groups`` are the output sub-folders jobs may write
    (known before the first job is formed, for resume); ``total`` sizes the progress bar."""
    out.mkdir(parents=True, exist_ok=True)
    state = out / ".sweaug"
    for p in out.rglob(".*.tmp*"):  # what a killed run was writing
        if p.is_file():
            p.unlink()
    if groups is None:
        jobs = list(jobs)
        groups = {j.group for j in jobs}
    groups = set(groups)
    finals = _existing_finals(out, groups)
    results: dict[str, dict] = {}
    refs: list[JobRef] = []
    done, reused = 0.0, 0
    total = float(total or 0.0)

    def tick(weight: float) -> None:
        nonlocal done
        done += weight
        if progress:
            progress(done, max(total, done))

    if progress:
        progress(0.0, total)
    pool = None
    if workers > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        ctx = mp.get_context("forkserver")  # fork is unsafe with threads (progress bar)
        # workers fork from a server that has already imported the audio stack
        ctx.set_forkserver_preload(["sweaug.partitions", "sweaug.audio", "sweaug.augment",
                                    "numpy", "soundfile", "soxr"])
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        for _ in range(workers):  # start the workers now, while the first jobs are being formed
            pool.submit(_warm)
    pending: dict = {}
    ready: list = []  # formed but not yet submitted: the heaviest goes first (short tail)

    def submit_heaviest() -> None:
        job = max(ready, key=lambda j: j.weight)
        ready.remove(job)
        pending[pool.submit(_pool_run, (job, state))] = (job.name, job.weight)

    try:
        for job in jobs:
            refs.append(JobRef(job.group, job.split, job.index, job.name))
            rec = _done(job, state, finals)
            if rec is not None:
                results[job.name] = rec
                reused += 1
                tick(job.weight)
            elif pool is None:
                results[job.name] = job.run(state)
                tick(job.weight)
            else:
                ready.append(job)
                while len(ready) + len(pending) > 2 * workers:  # bounded: jobs hold records
                    if len(pending) < workers:
                        submit_heaviest()
                    else:
                        _collect(pending, results, tick, block=True)
        while ready or pending:
            while ready and len(pending) < workers:
                submit_heaviest()
            _collect(pending, results, tick, block=True)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    log.info("%d jobs: %d reused, %d to build", len(refs), reused, len(refs) - reused)
    return results, refs, _finalize(out, refs, results, state, finals, groups)


def _collect(pending: dict, results: dict, tick, block: bool) -> None:
    from concurrent.futures import FIRST_COMPLETED, wait

    finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
    for fut in finished:
        name, weight = pending.pop(fut)
        results[name] = fut.result()
        tick(weight)


def _finalize(out, jobs, results, state, finals, groups) -> dict[str, list[dict]]:
    plan, counters, index = [], Counter(), defaultdict(list)
    for job in jobs:
        for j, s in enumerate(results[job.name]["shards"]):
            n = counters[(job.group, job.split)]
            counters[(job.group, job.split)] += 1
            final = out / job.group / f"{job.split}-{n:06d}.tar"
            plan.append((final, finals.get(s["sha256"]) or staging_name(state, job, j), s))
            rel = f"{job.group}/{final.name}" if job.group else final.name
            index[f"{job.group}/{job.split}" if job.group else job.split].append(
                {"path": rel, "sha256": s["sha256"], "samples": s["samples"], "bytes": s["bytes"]})
    wanted = {final for final, _, _ in plan}
    holding, moves = state / "holding", []
    for final, current, s in plan:  # phase 1: out of the way, under unique names
        if current == final:
            continue
        holding.mkdir(parents=True, exist_ok=True)
        held = holding / f"{s['sha256']}.tar"
        if current.exists():
            os.replace(current, held)
        moves.append((held, final))
    for g in groups:  # shards of earlier runs that this one does not contain
        d = out / g
        if d.is_dir():
            for f in d.iterdir():
                if SHARD_NAME.match(f.name) and f not in wanted:
                    f.unlink()
    for held, final in moves:  # phase 2: into place
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(held, final)
    current = {record_path(state, j) for j in jobs}
    for f in (state / "parts").rglob("*.json") if (state / "parts").is_dir() else ():
        if f not in current:
            f.unlink()
    for f in (state / "staging").rglob("*.tar") if (state / "staging").is_dir() else ():
        f.unlink()
    return index
