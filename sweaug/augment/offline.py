"""``sweaug augment``: N augmented copies of every sample of a shard folder, into new shards.

One job per input shard (see jobs.py): the same input shards + recipe + seed give
byte-identical output for any ``--workers``, a killed run resumes, and the output folder gets
its own manifest naming the input manifest it came from.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..build.jobs import ShardJob, check_shard_limits
from ..records import ConfigError, SourceError
from .recipe import PATH_PARAMS, Recipe

log = logging.getLogger("sweaug.augment")


@dataclass(frozen=True)
class AugmentJob(ShardJob):
    shard: str  # input shard path
    sha256: str
    samples: int
    split: str
    index: int
    recipe: Recipe
    seed: int
    copies: int
    shard_samples: int
    shard_bytes: int
    cache_dir: str
    version: str
    group: str = ""

    @property
    def weight(self) -> float:
        return float(self.samples * self.copies)

    def input_hash(self) -> str:
        steps = [(s.name, sorted(s.params.items())) for s in self.recipe.steps]
        return hashlib.sha256(json.dumps(
            [self.sha256, self.recipe.sha256, repr(steps), self.seed, self.copies,
             self.shard_samples, self.shard_bytes, self.version]).encode()).hexdigest()

    def run(self, state: Path) -> dict:
        return _run(self, state)


def _run(job: AugmentJob, state: Path) -> dict:
    import numpy as np
    import soundfile as sf

    from ..build.audio import CLIP_LEVEL, encode_flac
    from ..build.jobs import clear_staging, staged, staging_name, write_record
    from ..build.shards import ShardWriter, iter_samples, sample_json
    from .augmenter import AugmentError, Augmenter

    clear_staging(state, job)
    aug = Augmenter(job.recipe, job.seed, Path(job.cache_dir))
    writer = ShardWriter(lambda j: staging_name(state, job, j), job.shard_samples, job.shard_bytes)
    drops, seconds, fired, unchanged = [], 0.0, 0, 0
    try:
        for key, files in iter_samples(Path(job.shard)):
            meta = json.loads(files["json"])
            x, sr = sf.read(io.BytesIO(files["flac"]), dtype="float32")
            for copy in range(job.copies):
                try:
                    y, applied = aug(x, sr, key, copy)
                except AugmentError as e:
                    log.warning("%s copy %d: %s", key, copy, e)
                    drops.append({"source": meta.get("source", ""), "split": job.split,
                                  "item": f"{key}#{copy}", "reason": e.reason, "detail": e.detail})
                    continue
                out = dict(meta)
                out.update(key=f"{key}-aug{copy}", original_key=key,
                           duration=round(y.size / sr, 4), num_samples=int(y.size),
                           rms_dbfs=round(float(20 * np.log10(max(float(np.sqrt(np.mean(
                               np.square(y, dtype=np.float64)))), 1e-10))), 2),
                           clip_fraction=round(float(np.count_nonzero(np.abs(y) >= CLIP_LEVEL))
                                               / y.size, 6),
                           augment={"recipe": job.recipe.name, "recipe_sha256": job.recipe.sha256,
                                    "seed": job.seed, "copy": copy, "applied": applied})
                writer.write(out["key"], [("flac", encode_flac(y)), ("json", sample_json(out))])
                seconds += y.size / sr
                fired += bool(applied)
                unchanged += not applied
        shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    result = {"job": job.name, "input": job.input_hash(),
              "shards": staged(shards),
              "samples": sum(s.samples for s in shards), "seconds": round(seconds, 4),
              "augmented": fired, "unchanged": unchanged, "drops": drops}
    write_record(state, job, result)
    return result


def _read_manifest(mpath: Path) -> dict:
    try:
        m = json.loads(mpath.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SourceError(f"{mpath}:{e.lineno}: not valid JSON ({e.msg}, column {e.colno}): a "
                          "truncated or edited manifest; rebuild it (`sweaug build` or "
                          "`sweaug augment` with the same arguments resumes)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SourceError(f"cannot read {mpath}: {getattr(e, 'strerror', None) or e}") from None
    if not isinstance(m, dict):
        raise SourceError(f"{mpath}: not a sweaug manifest (a JSON {type(m).__name__})")
    return m


def find_input(folder: Path) -> tuple[dict, Path, str, dict]:
    """(manifest, manifest path, source name, splits) of a shard folder: a build's source
    folder (``corpus/cv``, manifest one level up) or an augmented folder (its own manifest)."""
    folder = Path(folder)
    for mpath, name in ((folder / "manifest.json", None), (folder.parent / "manifest.json",
                                                           folder.name)):
        if mpath.exists():
            m = _read_manifest(mpath)
            sources = m.get("sources", {})
            if not isinstance(sources, dict):
                raise SourceError(f"{mpath}: `sources` is not a mapping: not a sweaug manifest")
            name = name or next(iter(sources), None)
            if name in sources:
                return m, mpath, name, sources[name]["splits"]
    raise SourceError(f"{folder}: no manifest.json here or one level up that lists it: "
                      f"augment takes a `sweaug build` source folder such as corpus/cv")


def choose_splits(folder: Path, in_splits: dict, splits) -> tuple[str, ...]:
    """The splits to read (all of the folder's when ``splits`` is empty), refusing unknown ones."""
    chosen = tuple(splits) if splits else tuple(sorted(in_splits))
    missing = [s for s in chosen if s not in in_splits]
    if missing:
        raise SourceError(f"{folder} has no split {', '.join(missing)} "
                          f"(it has: {', '.join(sorted(in_splits))})")
    return chosen


def checked_shards(mpath: Path, in_splits: dict, chosen, verb: str) -> list[tuple]:
    """``(split, index, shard path, manifest entry)`` of every input shard of the ``chosen``
    splits, each present and matching its manifest's sha256 (else a SourceError naming it)."""
    from ..files import sha256_file

    out = []
    for split in chosen:
        for i, s in enumerate(in_splits[split]["shards"]):
            shard = mpath.parent / s["path"]
            if not shard.exists():
                raise SourceError(f"input shard {shard} is missing")
            if sha256_file(shard) != s["sha256"]:
                raise SourceError(f"input shard {shard} does not match the sha256 in {mpath}: "
                                  f"refusing to {verb} corrupt data")
            out.append((split, i, shard, s))
    return out


def augment_corpus(folder: Path, recipe: Recipe, copies: int, seed: int, out: Path,
                   splits: tuple[str, ...] | None = None, workers: int = 1,
                   shard_samples: int = 1000, shard_bytes: int = 512 << 20,
                   cache_dir: Path | None = None,
                   progress: Callable[[float, float], None] | None = None) -> dict:
    """Write ``copies`` augmented copies of every sample of ``folder`` (a build's source folder
    or an augmented folder) into ``out``, with its own manifest. ``out`` may not be, contain or
    be inside ``folder``; one run at a time writes it (storage.OutputLock)."""
    if copies < 1:
        raise ConfigError("--copies must be at least 1")
    check_shard_limits(shard_samples, shard_bytes)
    import os

    from .. import __version__
    from ..build.jobs import derived_manifest, run_jobs, split_results, write_manifest
    from ..build.storage import OutputLock, refuse_overlap

    folder, out = Path(folder), Path(out)
    manifest, mpath, source, in_splits = find_input(folder)
    refuse_overlap(out, [("folder", folder), ("manifest", mpath)])
    chosen = choose_splits(folder, in_splits, splits)
    cache = str(cache_dir or os.environ.get("SWEAUG_CACHE", Path.home() / ".cache" / "sweaug"))
    from .augmenter import Augmenter
    Augmenter(recipe, seed, Path(cache))  # prepares noise/RIR folders: errors before any job
    jobs = [AugmentJob(str(shard), s["sha256"], s["samples"], split, i, recipe, int(seed),
                       copies, shard_samples, shard_bytes, cache, __version__)
            for split, i, shard, s in checked_shards(mpath, in_splits, chosen, "augment")]
    with OutputLock(out):  # one run at a time, until its manifest is written
        results, _, index = run_jobs(out, jobs, workers, progress,
                                     total=sum(j.weight for j in jobs), groups={""})
        drops, out_splits = [], {}
        for split in chosen:
            rs, counts, split_drops = split_results(results, jobs, split)
            drops += split_drops
            out_splits[split] = {
                "samples": sum(r["samples"] for r in rs),
                "hours": round(sum(r["seconds"] for r in rs) / 3600, 4),
                "speakers": in_splits[split].get("speakers", 0),
                "augmented": sum(r["augmented"] for r in rs),
                "unchanged": sum(r["unchanged"] for r in rs),
                "drops": counts, "shards": index.get(split, []),
            }
        result = derived_manifest(
            "sweaug-augmented/1", folder, out, mpath, manifest, source,
            f"augmented with {recipe.name} (seed {seed}, {copies} copies)", out_splits, drops,
            # carried (only when set), so that ablate and windows refuse the augmented copy of
            # an unlabelled folder too
            carried={"unlabelled": True} if manifest["sources"][source].get("unlabelled") else None,
            augment={"recipe": recipe.name, "recipe_file": recipe.path,
                     "recipe_sha256": recipe.sha256, "seed": int(seed), "copies": copies,
                     "transforms": [{"name": s.name, "line": s.line,
                                     "parameters": {k: (Path(v).name if k in PATH_PARAMS else v)
                                                    for k, v in s.params.items()}}
                                    for s in recipe.steps]})
        write_manifest(out, result)
    return result
