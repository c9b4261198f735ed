"""How far the demo's numbers move, and what it costs: `sweaug demo` several times, side by side
in one run (issue #19 point 2).

What is promised, and what this measures:

* **byte-identical** on the same machine with the same library versions and the same seed: the
  first two runs (``native``, seed 13) must give the same ``results.csv`` bytes (exit 1 if not);
* **across CPUs**: torch picks its CPU kernels by the instruction set (``ATEN_CPU_CAPABILITY``:
  ``default``, ``avx2``, ``avx512``), and a different kernel adds floating-point sums in another
  order — what another machine does. The runs ``cpu=...`` force each kernel family on this
  machine; their spread is the spread to expect on other x86 CPUs;
* **across seeds** (the augmentation draws, the initialisation, the order): runs with seeds 14
  and 15 — the spread a different seed gives, which bounds what any one table can claim;
* wall time and CPU-seconds (this process's children) of every run: the README gives the range.

    python benchmarks/demo_spread.py --out runs/demo-spread          # ~6 runs of 3-4 min
    python benchmarks/demo_spread.py --runs native:13,native:13,avx2:13 --out /tmp/s

Prints one line per run and a JSON summary (also ``<out>/spread.json``): per model and test
set the WER of every run, and the min-max over the CPU runs and over the seed runs.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = "native:13,native:13,default:13,avx2:13,native:14,native:15"


def one_run(out: Path, cpu: str, seed: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if cpu != "native":
        env["ATEN_CPU_CAPABILITY"] = cpu
    if out.exists():
        shutil.rmtree(out)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "sweaug.cli", "demo", "--out", str(out), "--seed",
                        str(seed)], env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        raise SystemExit(f"demo ({cpu}, seed {seed}) failed:\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    results = next(out.glob("runs/*/results.csv"))
    rows = list(csv.DictReader(results.open(encoding="utf-8")))
    wer = {f"{r['mix']} {r['eval_set']}": round(100 * float(r["wer"]), 1) for r in rows if r["wer"]}
    nwer = {f"{r['mix']} {r['eval_set']}": round(100 * float(r["nwer"]), 1)
            for r in rows if r["nwer"]}
    diff = {f"{r['mix']} {r['eval_set']}": round(100 * float(r["diff"]), 1)
            for r in rows if r["diff"]}
    return {"cpu": cpu, "seed": seed, "wall_s": round(wall, 1),
            "cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
            "wer": wer, "nwer": nwer, "diff": diff, "results_csv": results.read_bytes().decode()}


def spread(runs: list[dict], key: str) -> dict:
    out = {}
    for name in runs[0][key]:
        vals = [r[key][name] for r in runs if name in r[key]]
        out[name] = [min(vals), max(vals)]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", default=DEFAULT_RUNS,
                    help="cpu:seed,... (cpu: native or an ATEN_CPU_CAPABILITY value)")
    ap.add_argument("--out", type=Path, default=Path("runs/demo-spread"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for i, spec in enumerate(args.runs.split(",")):
        cpu, seed = spec.split(":")
        r = one_run(args.out / f"run{i}", cpu, int(seed))
        print(f"run {i}: cpu={cpu} seed={seed} wall {r['wall_s']:.0f} s, {r['cpu_s']:.0f} CPU-s, "
              f"WER {r['wer']}, Δ {r['diff']}", flush=True)
        runs.append(r)
    same = [r for r in runs if r["cpu"] == "native" and r["seed"] == 13]
    identical = len(same) < 2 or all(r["results_csv"] == same[0]["results_csv"] for r in same)
    seed13 = [r for r in runs if r["seed"] == 13]
    native = [r for r in runs if r["cpu"] == "native"]
    summary = {
        "byte_identical_same_machine": identical if len(same) > 1 else None,
        "cpu_kernels": sorted({r["cpu"] for r in seed13}),
        "wer_across_cpu_kernels": spread(seed13, "wer"),
        "nwer_across_cpu_kernels": spread(seed13, "nwer"),
        "diff_across_cpu_kernels": spread(seed13, "diff"),
        "seeds": sorted({r["seed"] for r in native}),
        "wer_across_seeds": spread(native, "wer"),
        "diff_across_seeds": spread(native, "diff"),
        "wall_s": [min(r["wall_s"] for r in runs), max(r["wall_s"] for r in runs)],
        "cpu_s": [min(r["cpu_s"] for r in runs), max(r["cpu_s"] for r in runs)],
        "runs": [{k: v for k, v in r.items() if k != "results_csv"} for r in runs],
    }
    text = json.dumps(summary, indent=1, ensure_ascii=False)
    (args.out / "spread.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
