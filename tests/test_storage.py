"""`sweaug build --out URL`: fsspec outputs (file://, and s3:// against a real S3 protocol server
on localhost, moto) give the same bytes as a local folder, commit atomically and resume."""
from __future__ import annotations

import importlib.util
import logging
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CV12, FIX, sweaug, tree_bytes

ARGS = ["--sources", "cv,fleurs,rixvox,local", "--cv-dir", CV12, "--cv-extra", "validated",
        "--fleurs-dir", FIX / "fleurs", "--rixvox-dir", FIX / "rixvox",
        "--local-dir", FIX / "local", "--shard-samples", "3", "--no-progress"]
needs_s3 = pytest.mark.skipif(
    not all(importlib.util.find_spec(m) for m in ("s3fs", "moto", "flask")),
    reason="needs the s3 and test extras (s3fs, moto[server])")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, env) -> dict[str, bytes]:
    """The same build into a local folder."""
    out = tmp_path_factory.mktemp("ref") / "corpus"
    sweaug(env, "build", *ARGS, "--out", out, "--workers", "2")
    return tree_bytes(out)


def jobs_line(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) jobs: (\d+) reused, (\d+) to build", stderr)
    assert m, stderr
    return int(m.group(2)), int(m.group(3))


def test_file_url_same_bytes_and_resume(reference, tmp_path, env):
    out = tmp_path / "f"
    url = out.as_uri()
    p = sweaug(env, "build", *ARGS, "--out", url, "--workers", "2")
    assert f"wrote {url}/manifest.json" in p.stdout
    assert tree_bytes(out) == reference
    assert (out / ".sweaug" / "finals.json").exists()
    assert not list(out.rglob("*.tar.tmp*")) and not list((out / ".sweaug").rglob("*.tar"))
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")}
    (out / "cv" / ".train-000000.tar.tmp99-deadbeef").write_bytes(b"half")  # a killed upload
    p = sweaug(env, "-v", "build", *ARGS, "--out", url)
    assert jobs_line(p.stderr) == (17, 0)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/*.tar")} == before
    assert tree_bytes(out) == reference


def test_url_inputs_are_fetched_once_into_the_cache(reference, tmp_path, env):
    """Every --*-dir as a file:// URL (the fsspec path s3://, gs:// and hf:// take too): the
    same shards; a re-run neither downloads again nor rebuilds."""
    urls = [a.as_uri() if isinstance(a, Path) else a for a in ARGS]
    out = tmp_path / "u"
    sweaug(env, "build", *urls, "--out", out)
    got = tree_bytes(out)
    assert {k: v for k, v in got.items() if k != "manifest.json"} == \
        {k: v for k, v in reference.items() if k != "manifest.json"}
    markers = list((Path(env["SWEAUG_CACHE"]) / "inputs").glob("*/.complete.json"))
    assert len(markers) == 4
    before = {m: m.stat().st_mtime_ns for m in markers}
    p = sweaug(env, "-v", "build", *urls, "--out", out)
    assert jobs_line(p.stderr) == (17, 0)
    assert {m: m.stat().st_mtime_ns for m in markers} == before
    p = sweaug(env, "build", "--sources", "local", "--local-dir", (tmp_path / "nope").as_uri(),
               "--out", out, check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr and "Traceback" not in p.stderr


def test_bad_storage_options_and_urls_are_clear_errors(tmp_path, env):
    cases = [(["--out", tmp_path / "o", "--storage-option", "anon"], "expected key=value"),
             (["--out", tmp_path / "o", "--storage-option", "anon=true"],
              "applies to fsspec URLs"),
             (["--out", "nosuchproto://x/y"], "nosuchproto"),
             (["--out", "hf://datasets/someone/corpus"], "sweaug publish"),
             (["--out", (tmp_path / "o").as_uri(), "--executor", "local", "--ray-address",
               "auto"], "--ray-address needs --executor ray")]
    for extra, msg in cases:
        p = sweaug(env, "build", "--sources", "local", "--local-dir", FIX / "local", *extra,
                   check=False)
        assert p.returncode == 2 and msg in p.stderr and "Traceback" not in p.stderr, p.stderr


# ---- s3:// on a local moto server -------------------------------------------------------------

@pytest.fixture(scope="module")
def s3(env):
    """A moto S3 server on 127.0.0.1 (free port), an s3fs client, and the CLI's environment:
    credentials and the endpoint as fsspec's own config variable."""
    from moto.server import ThreadedMotoServer
    import s3fs

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
             "AWS_DEFAULT_REGION": "us-east-1"}
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing",
                           skip_instance_cache=True)
    if fs.exists("corpora"):  # moto keeps its buckets per process, across servers
        fs.rm("corpora", recursive=True)
    fs.mkdir("corpora")
    e = dict(env, **creds, FSSPEC_S3_ENDPOINT_URL=endpoint)
    yield {"fs": fs, "env": e, "endpoint": endpoint}
    server.stop()


def s3_tree(fs, prefix: str) -> dict[str, bytes]:
    fs.invalidate_cache()
    return {p[len(prefix) + 1:]: fs.cat_file(p) for p in sorted(fs.find(prefix))
            if "/.sweaug/" not in p}


KILLER = """
import os, signal, sys
from sweaug.build import shards
calls = {"n": 0}
orig = shards.ShardWriter.write
def write(self, key, files):
    calls["n"] += 1
    orig(self, key, files)
    if calls["n"] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
shards.ShardWriter.write = write
from sweaug.cli import main
sys.exit(main())
"""


@needs_s3
def test_s3_same_bytes_kill_resume_and_missing_partition(reference, s3, tmp_path):
    fs, e = s3["fs"], s3["env"]
    url = "s3://corpora/killed"
    # killed mid-build (in a shard of the 4th partition): nothing final, no manifest
    p = subprocess.run([sys.executable, "-c", KILLER, "build", *map(str, ARGS), "--out", url,
                        "--workers", "1"],  # the kill in this process: the patch is here
                       env=dict(e, KILL_AT="11", TMPDIR=str(tmp_path)), capture_output=True,
                       text=True)
    assert p.returncode == -9, p.stderr
    fs.invalidate_cache()
    names = [n[len("corpora/killed/"):] for n in fs.find("corpora/killed")]
    assert names and all(n.startswith(".sweaug/") for n in names), names
    recorded = [n for n in names if n.startswith(".sweaug/parts/")]
    assert recorded and all(n.startswith((".sweaug/parts/", ".sweaug/staging/"))
                            for n in names if n != ".sweaug/lock.json")  # the killed run's lock
    # a leftover temporary object (as a crashed commit on a non-atomic backend leaves) goes too
    fs.pipe_file("corpora/killed/cv/.train-000000.tar.tmp7-0badc0de", b"partial")
    p = sweaug(e, "-v", "build", *ARGS, "--out", url, "--workers", "2")
    assert "taking over the lock of a sweaug run that is gone" in p.stderr
    reused, built = jobs_line(p.stderr)
    assert reused == len(recorded) and built == 17 - reused
    assert s3_tree(fs, "corpora/killed") == reference
    fs.invalidate_cache()
    assert not fs.find("corpora/killed/.sweaug/staging")
    # a shard object lost (or a partition never run): only that partition is built again
    fs.rm_file("corpora/killed/fleurs/train-000001.tar")
    p = sweaug(e, "-v", "build", *ARGS, "--out", url)
    assert jobs_line(p.stderr) == (16, 1)
    assert s3_tree(fs, "corpora/killed") == reference


@needs_s3
def test_s3_storage_options_and_missing_bucket(reference, s3, env):
    """Endpoint and credentials as --storage-option (no AWS_* or FSSPEC_* variables)."""
    fs = s3["fs"]
    opts = ["--storage-option", f"endpoint_url={s3['endpoint']}", "--storage-option",
            "key=testing", "--storage-option", "secret=testing"]
    clean = {k: v for k, v in env.items() if not k.startswith(("AWS_", "FSSPEC_"))}
    sweaug(clean, "build", "--sources", "local", "--local-dir", FIX / "local", "--shard-samples",
           "3", "--no-progress", "--out", "s3://corpora/opts", *opts)
    got = s3_tree(fs, "corpora/opts")
    shards = {k: v for k, v in got.items() if k.endswith(".tar")}
    assert shards and shards == {k: v for k, v in reference.items() if k.startswith("local/")}
    assert {"manifest.json", "leakage.tsv"} <= set(got)
    p = sweaug(clean, "build", *ARGS, "--out", "s3://no-such-bucket/c", *opts, check=False)
    assert p.returncode == 2 and "s3://no-such-bucket/c" in p.stderr
    assert "does not exist" in p.stderr and "Traceback" not in p.stderr
