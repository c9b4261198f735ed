#!/usr/bin/env python
"""Build scaling: the same build with 1 and 2 local workers and on Ray with 2 CPUs.

    python benchmarks/build_scaling.py [--clips 2000] [--scale 3] [--shard-samples 200]
                                       [--repeat 1] [--workdir DIR] [--keep]

Uses the synthetic Common Voice 17.0 input of ``build_throughput.py`` (its generator, imported:
``--clips`` espeak-ng mp3 clips at 48 kHz, cached in ``--workdir``), ``--scale`` times over (hard
links under new names), and runs ``sweaug build`` in fresh subprocesses:

1. ``--workers 1`` (the baseline);
2. ``--workers 2``;
3. ``--executor ray --workers 2``: sweaug starts a local Ray with 2 CPUs (start-up included, as a
   user running the command sees it);
4. ``--executor ray --ray-address ADDR``: joins a Ray with 2 CPUs that this script started
   beforehand (start-up excluded: the steady state of a long build on a running cluster).

Prints audio seconds per wall second and the speed-up over 1 worker for each (with ``--repeat N``,
each run N times, the shortest wall time counts: on a shared machine, the least disturbed), and
checks that the outputs are byte-identical (every shard, manifest.json, leakage.tsv). ``--shard-samples``
(default 200) sets the partition size: with the default 1000, a 6,000-clip input has only ~8
partitions and the tail of the last one bounds any 2-worker speed-up. Wall times on a shared
machine are noisy. Needs espeak-ng (for the input) and the ray extra.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_throughput as bt  # noqa: E402  (the input generator and the measuring wrapper)

RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and ".sweaug" not in p.parts}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--clips", type=int, default=2000, help="clips generated (cached)")
    ap.add_argument("--scale", type=int, default=3, help="the input is this many times the clips")
    ap.add_argument("--shard-samples", type=int, default=200, help="partition size")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest counts")
    ap.add_argument("--workdir", type=Path,
                    default=Path(tempfile.gettempdir()) / "sweaug-build-throughput",
                    help="inputs are cached here (shared with build_throughput.py)")
    ap.add_argument("--keep", action="store_true", help="keep the outputs")
    args = ap.parse_args(argv)
    try:
        import ray
    except ImportError:
        raise SystemExit("needs Ray: pip install 'sweaug[ray]'") from None

    t0 = time.perf_counter()
    work = args.workdir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    print(f"workdir {work}; {os.cpu_count()} CPUs; python {sys.version.split()[0]}; "
          f"ray {ray.__version__}")
    inp = bt.make_input(work, args.clips)
    if args.scale > 1:
        inp = bt.make_scaled(work, inp, args.clips, args.scale)
    bt.warm_cache(inp)
    extra = ["--shard-samples", str(args.shard_samples)]
    env = bt.child_env(RAY_ENV)
    outs = {k: work / f"scaling-{k}" for k in ("w1", "w2", "ray", "ray-joined")}
    logs = work / "logs"
    names = {"w1": "local, 1 worker", "w2": "local, 2 workers",
             "ray": "ray, 2 CPUs (started by sweaug)",
             "ray-joined": "ray, 2 CPUs (joined, start-up excluded)"}
    walls: dict[str, list[float]] = {k: [] for k in names}

    def run(key: str, cmd_extra: list[str], workers: int, run_env: dict) -> None:
        shutil.rmtree(outs[key], ignore_errors=True)  # a fresh build every time
        r = bt.measure(names[key], bt.sweaug_cmd(inp, outs[key], workers, extra + cmd_extra),
                       logs / f"scaling-{key}.log", run_env)
        walls[key].append(r["wall"])

    for _ in range(args.repeat):
        run("w1", [], 1, env)
        run("w2", [], 2, env)
        run("ray", ["--executor", "ray"], 2, env)
    for k, v in RAY_ENV.items():
        os.environ[k] = v
    t = time.perf_counter()
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    print(f"(a Ray with 2 CPUs for the joined runs started in {time.perf_counter() - t:.1f} s)")
    try:
        joined_env = dict(env, **{k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH")})
        for _ in range(args.repeat):
            run("ray-joined", ["--executor", "ray", "--ray-address",
                               ctx.address_info["gcs_address"]], 2, joined_env)
    finally:
        ray.shutdown()

    trees = {k: tree(o) for k, o in outs.items()}
    seconds = bt.read_output(outs["w1"])["seconds"]
    best = {k: min(w) for k, w in walls.items()}
    base = seconds / best["w1"]
    print(f"\n== build scaling: {args.clips * args.scale} clips ({seconds / 3600:.2f} h of 48 kHz "
          f"mp3) -> FLAC shards, --shard-samples {args.shard_samples}, best of {args.repeat} ==")
    head = ["run", "wall s", "audio-s/wall-s", "speed-up vs 1 worker", "same bytes as 1 worker",
            "all wall s"]
    rows = [[names[k], f"{best[k]:.1f}", f"{seconds / best[k]:.0f}",
             f"{seconds / best[k] / base:.2f}x", "yes" if trees[k] == trees["w1"] else "NO",
             " ".join(f"{w:.1f}" for w in walls[k])] for k in names]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(head)]
    print("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    same = all(trees[k] == trees["w1"] for k in trees) and len(trees["w1"]) > 2
    print(f"\noutputs: {len(trees['w1'])} files each; "
          f"{'byte-identical' if same else 'DIFFERENT'} across the four runs")
    if not args.keep:
        for o in outs.values():
            shutil.rmtree(o, ignore_errors=True)
    print(f"total benchmark time {time.perf_counter() - t0:.0f} s; logs in {logs}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
