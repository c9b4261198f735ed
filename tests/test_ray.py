"""`sweaug build --executor ray`: the same partitions as Ray tasks on a local Ray (2 CPUs, on the
loopback address), joined by the CLI with --ray-address as a user joins a cluster: the same
bytes as the local pool, failed partitions retried, a killed build resumed."""
from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys

import pytest

from conftest import FIX, sweaug, tree_bytes
from test_storage import ARGS, jobs_line, needs_s3, reference, s3, s3_tree  # noqa: F401

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="needs the ray extra (pip install 'sweaug[ray]')")
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray listens on 127.0.0.1 only


@pytest.fixture(scope="module")
def ray_env(env):
    """One local Ray for the module; the CLI joins it with --ray-address."""
    with pytest.MonkeyPatch.context() as mp:
        for k, v in RAY_ENV.items():
            mp.setenv(k, v)
        import ray

        ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
        try:
            # ray.init turned token authentication on (RAY_AUTH_MODE): joiners need it too
            joiner = {k: v for k, v in os.environ.items() if k.startswith("RAY_AUTH")}
            yield dict(env, **RAY_ENV, **joiner), ctx.address_info["gcs_address"]
        finally:
            ray.shutdown()


@needs_ray
def test_ray_build_is_byte_identical_to_local(reference, ray_env, tmp_path):
    e, address = ray_env
    out = tmp_path / "ray"
    p = sweaug(e, "-v", "build", *ARGS, "--out", out, "--executor", "ray", "--ray-address",
               address)
    assert "Ray: 2 CPUs in the cluster, 2 jobs at a time" in p.stderr
    assert jobs_line(p.stderr) == (0, 17)
    assert tree_bytes(out) == reference


# Driver-side wrapper: some partitions fail (their first attempt, or every attempt). Failing is
# defined in __main__, so Ray ships it to the workers by value: no test hook in sweaug itself.
FAILING = """
import os, sys
from sweaug.build import pipeline as b

class Failing:
    def __init__(self, part, how, marker):
        self.part, self.how, self.marker = part, how, marker
        self.group, self.split, self.index = part.group, part.split, part.index
        self.name, self.weight = part.name, part.weight

    def input_hash(self):
        return self.part.input_hash()

    def run(self, state):
        with open(self.marker, "a") as f:  # one line per attempt
            f.write("x\\n")
        if self.how.endswith("always") or os.path.getsize(self.marker) == 2:
            if self.how.startswith("crash"):
                os._exit(3)  # the worker process dies
            from sweaug.records import SourceError
            raise SourceError(f"injected failure in {self.name}")
        return self.part.run(state)

plan = dict(x.split("=") for x in os.environ["FAIL"].split(","))
orig = b.partition_stream

def stream(records, settings):
    for part in orig(records, settings):
        how = plan.get(part.name)
        marker = os.path.join(os.environ["MARKERS"], part.name.replace("/", "_"))
        yield Failing(part, how, marker) if how else part

b.partition_stream = stream
from sweaug.cli import main
sys.exit(main())
"""


def attempts(markers, name: str) -> int:
    return len((markers / name.replace("/", "_")).read_text().splitlines())


@needs_ray
def test_failed_partitions_are_retried(reference, ray_env, tmp_path):
    e, address = ray_env
    markers = tmp_path / "markers"
    markers.mkdir()
    ray_args = ["--executor", "ray", "--ray-address", address]

    def run(out, fail, *extra):
        return subprocess.run([sys.executable, "-c", FAILING, "build", *map(str, extra),
                               "--out", str(out), *ray_args],
                              env=dict(e, FAIL=fail, MARKERS=str(markers)), capture_output=True,
                              text=True, timeout=600)

    # a worker that dies and a partition that raises, once each: retried, the same bytes
    p = run(tmp_path / "once", "cv/train/00001=crash,fleurs/test/00000=raise", *ARGS)
    assert p.returncode == 0, p.stderr
    assert attempts(markers, "cv/train/00001") == 2 and attempts(markers, "fleurs/test/00000") == 2
    assert tree_bytes(tmp_path / "once") == reference
    # failing on every try: Ray gives up after --retries, the user gets a one-line error
    local = ["--sources", "local", "--local-dir", FIX / "local", "--no-progress"]
    p = run(tmp_path / "raise", "local/train/00000=raise-always", *local, "--retries", "2")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "error: injected failure in local/train/00000" in p.stderr
    assert attempts(markers, "local/train/00000") == 3
    (markers / "local_train_00000").unlink()
    p = run(tmp_path / "crash", "local/train/00000=crash-always", *local, "--retries", "1")
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "job local/train/00000 failed on Ray after 1 retries" in p.stderr
    assert attempts(markers, "local/train/00000") == 2
    assert not (tmp_path / "crash" / "manifest.json").exists()


KILLER = """
import os, signal, sys
from sweaug.build import executors
orig = executors.RayExecutor.wait
seen = {"n": 0}
def wait(self, handles):
    done = orig(self, handles)
    seen["n"] += len(done)
    if seen["n"] >= int(os.environ["KILL_AFTER"]):
        os.kill(os.getpid(), signal.SIGKILL)  # the driver dies; Ray drops its tasks
    return done
executors.RayExecutor.wait = wait
from sweaug.cli import main
sys.exit(main())
"""


@needs_ray
def test_killed_ray_build_reruns_only_missing_partitions(reference, ray_env, tmp_path):
    e, address = ray_env
    out = tmp_path / "killed"
    cmd = ["build", *map(str, ARGS), "--out", str(out), "--executor", "ray", "--ray-address",
           address]
    p = subprocess.run([sys.executable, "-c", KILLER, *cmd], env=dict(e, KILL_AFTER="5"),
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == -9, p.stderr
    assert not (out / "manifest.json").exists() and not list(out.glob("*/*.tar"))
    done = {r: r.stat().st_mtime_ns for r in (out / ".sweaug" / "parts").rglob("*.json")}
    assert len(done) >= 5
    p = sweaug(e, "-v", *cmd)
    reused, built = jobs_line(p.stderr)
    assert reused == len(done) and built == 17 - reused
    assert {r: r.stat().st_mtime_ns for r in done} == done  # not one of them written again
    assert tree_bytes(out) == reference


@needs_ray
@needs_s3
def test_ray_workers_write_to_s3(reference, ray_env, s3):
    """Workers commit their shards to the store themselves (the endpoint and credentials travel
    with the job as storage options)."""
    e, address = ray_env
    opts = ["--storage-option", f"endpoint_url={s3['endpoint']}", "--storage-option",
            "key=testing", "--storage-option", "secret=testing"]
    clean = {k: v for k, v in e.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    sweaug(clean, "build", *ARGS, "--out", "s3://corpora/ray", *opts, "--executor", "ray",
           "--ray-address", address)
    assert s3_tree(s3["fs"], "corpora/ray") == reference


def test_without_ray_installed_the_error_says_what_to_install(tmp_path, env):
    hide = ("import sys; sys.modules['ray'] = None\n"
            "from sweaug.cli import main; sys.exit(main())")
    p = subprocess.run([sys.executable, "-c", hide, "build", "--sources", "local", "--local-dir",
                        str(FIX / "local"), "--out", str(tmp_path / "o"), "--executor", "ray"],
                       env=env, capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "pip install 'sweaug[ray]'" in p.stderr
