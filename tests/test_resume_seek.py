"""benchmarks/resume_seek.py, small: the resumed stream's first sample is the replayed
stream's sample at the same position, and the JSON says so (seconds are not asserted beyond
seek < replay: machines are noisy)."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT


def test_resume_seek_benchmark(tmp_path, env):
    out = tmp_path / "seek"
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "resume_seek.py"),
                        "--positions", "40,300", "--out", str(out)],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    j = json.loads(r.stdout.strip().splitlines()[-1])
    assert j == json.loads((out / "resume_seek.json").read_text())
    assert j["ok"] is True and [x["position"] for x in j["results"]] == [40, 300]
    for x in j["results"]:
        assert x["same_sample"] is True
        assert x["samples_replayed"] + sum(x["dropped_before"].values()) == x["position"]
        assert 0 < x["seek_seconds"] < x["replay_seconds"]
