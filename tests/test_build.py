"""`sweaug build` end to end from the CLI on fixtures laid out like the real sources."""
from __future__ import annotations

import glob
import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest
import soundfile as sf

from conftest import CV12, CV17_TAR, FIX, seed_hub_cache, sweaug, tree_bytes

FLEURS_REV = "70bb2e84b976b7e960aa89f1c648e09c59f894dd"
RIXVOX_REV = "9b2b6066ee184faf436363ff0823f2e465ccfb31"
ALL_SV = ["--sources", "cv,fleurs,rixvox,local", "--cv-dir", CV12, "--cv-extra", "validated",
          "--fleurs-dir", FIX / "fleurs", "--rixvox-dir", FIX / "rixvox",
          "--local-dir", FIX / "local", "--shard-samples", "3", "--no-progress"]


@pytest.fixture(scope="module")
def build_a(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("a") / "corpus"
    sweaug(env, "build", *ALL_SV, "--out", out, "--workers", "2")
    return out


@pytest.fixture(scope="module")
def build_b(tmp_path_factory, env):
    """CV v17 as the MDC tarball, FLEURS fetched through huggingface_hub (offline cache)."""
    seed_hub_cache(env, "google/fleurs", FLEURS_REV, FIX / "fleurs")
    out = tmp_path_factory.mktemp("b") / "corpus"
    sweaug(env, "build", "--sources", "cv,fleurs", "--cv-dir", CV17_TAR, "--cv-extra", "validated",
           "--out", out, "--no-progress")
    return out


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def shard_samples(out: Path) -> dict[str, dict]:
    """key -> sample JSON, read back from every shard of a build."""
    found = {}
    for shard in sorted(out.glob("*/*.tar")):
        with tarfile.open(shard) as t:
            for m in t:
                key, ext = m.name.split(".", 1)
                if ext == "json":
                    found[key] = json.loads(t.extractfile(m).read())
    return found


def outcomes(rows: list[dict], out: Path, source: str, item_of) -> None:
    """Each fixture row's expected outcome is what the build did with it."""
    m, samples, leaks = manifest(out), shard_samples(out), (out / "leakage.tsv").read_text()
    drops = {(d["item"], d["reason"]) for d in m["drops"] if d["source"] == source}
    for row in rows:
        outcome = row["outcome"]
        items = item_of(row)
        if outcome.startswith("kept"):
            assert any(f"{source}_{i}" in samples for i in items), (row, "missing from shards")
        elif outcome.startswith(("skip:", "leak:")):
            reason = outcome.split(":", 1)[1].strip().split()[0]
            assert any((i, reason) in drops for i in items), (row, sorted(drops))
            if outcome.startswith("leak:"):
                assert any(i in leaks for i in items)
        for i in items:  # (a duplicate row's clip is in the shards once, from its first row)
            if not outcome.startswith("kept") and "duplicate_id" not in outcome:
                assert f"{source}_{i}" not in samples


def cv_items(tsv):
    return lambda row: [f"{tsv}.tsv:{row['line']}", row["path"].rsplit(".", 1)[0]]


def test_cv_v12_rows_end_as_expected(build_a, expected):
    rel = expected["cv"]["cv-corpus-12.0-2022-12-07"]
    for split in ("train", "dev", "test"):
        outcomes(rel["rows"][split], build_a, "cv", cv_items(split))
    extras = [r for r in rel["rows"]["validated"]
              if r["path"] in rel["validated_only_paths"]]
    assert len(extras) == 4
    outcomes(extras, build_a, "cv", cv_items("validated"))


def test_cv_v17_tarball_fleurs_from_hub_cache(build_b, expected):
    rel = expected["cv"]["cv-corpus-17.0-2024-03-15"]
    for split in ("train", "dev", "test"):
        outcomes(rel["rows"][split], build_b, "cv", cv_items(split))
    m = manifest(build_b)
    unsafe = {d["item"].split(":", 1)[1] for d in m["drops"] if d["reason"] == "unsafe_member"
              and d["source"] == "cv"}
    assert unsafe == {u["name"] for u in rel["unsafe_members"]}
    assert not Path("/tmp/sweaug-evil.mp3").exists()
    assert m["sources"]["fleurs"]["release"].startswith("sv_se (google/fleurs@70bb2e84b976")
    # the FLEURS test sentence read again in CV train is a cross-source leak
    leak = expected["cross_source_leaks"][0]
    assert f"cv\ttrain\tcv_{leak['train']['path'][:-4]}" in (build_b / "leakage.tsv").read_text()
    assert m["sources"]["cv"]["count_check"]["train"] == {"expected": 7744, "read": 11}


def test_fleurs_voxpopuli_local_rixvox_rows(build_a, tmp_path, env, expected):
    fl = expected["fleurs"]["sv_se"]["rows"]
    for split, tsv in (("train", "train"), ("dev", "dev"), ("test", "test")):
        outcomes(fl[split], build_a, "fleurs",
                 lambda r, t=tsv: [f"{t}.tsv:{r['line']}", r["file_name"].rsplit(".", 1)[0]])
    samples = shard_samples(build_a)
    local = [s for s in samples.values() if s["source"] == "local"]
    assert len(local) == len(expected["local"]["rows"])
    assert {s["source_sample_rate"] for s in local} >= {8000, 44100}
    assert any(s["source_channels"] == 2 for s in local)
    dotted = [s for s in local if json.loads(s["extras"])["path"] == "audio/clip.v2.final.wav"]
    assert dotted and "." not in dotted[0]["key"]
    out = tmp_path / "vp"
    sweaug(env, "build", "--sources", "voxpopuli", "--language", "fi", "--voxpopuli-dir",
           FIX / "voxpopuli", "--out", out, "--no-progress")
    vp = expected["voxpopuli"]["fi"]["rows"]
    vs = shard_samples(out)
    assert len(vs) == sum(len(v) for v in vp.values())
    assert all("." not in k for k in vs)
    assert {s["language"] for s in vs.values()} == {"fi"}


def test_voxpopuli_swedish_is_an_error_pointing_to_rixvox(tmp_path, env):
    p = sweaug(env, "build", "--sources", "voxpopuli", "--out", tmp_path / "o", check=False)
    assert p.returncode == 2 and "rixvox" in p.stderr and "Traceback" not in p.stderr
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_shards_open_with_webdataset_and_datasets(build_a):
    import webdataset as wds
    from datasets import load_dataset

    m = manifest(build_a)
    for source in ("cv", "fleurs", "rixvox"):
        for split, info in m["sources"][source]["splits"].items():
            urls = sorted(str(build_a / s["path"]) for s in info["shards"])
            assert sum(s["samples"] for s in info["shards"]) == info["samples"]
            n = 0
            for sample in wds.WebDataset(urls, shardshuffle=False):
                x, sr = sf.read(io.BytesIO(sample["flac"]))
                meta = json.loads(sample["json"])
                assert sr == 16000 and x.ndim == 1 and meta["key"] == sample["__key__"]
                n += 1
            assert n == info["samples"]
    files = {split: sorted(glob.glob(str(build_a / "cv" / f"{split}-*.tar")))
             for split in ("train", "validation", "test")}
    ds = load_dataset("webdataset", data_files=files)
    for split in files:
        assert ds[split].num_rows == m["sources"]["cv"]["splits"][split]["samples"]
    audio = ds["train"][0]["flac"]
    sr = audio["sampling_rate"] if isinstance(audio, dict) else audio.get_all_samples().sample_rate
    assert sr == 16000
    assert set(ds["train"][0]["json"]) >= {"text", "text_normalized", "speaker", "duration"}


def test_manifest_counts_match_shards(build_a):
    from sweaug.files import sha256_file

    m, samples = manifest(build_a), shard_samples(build_a)
    total = 0
    for name, src in m["sources"].items():
        for split, info in src["splits"].items():
            for s in info["shards"]:
                assert sha256_file(build_a / s["path"]) == s["sha256"]
            got = [v for v in samples.values() if v["source"] == name and v["split"] == split]
            assert len(got) == info["samples"]
            assert abs(sum(v["duration"] for v in got) / 3600 - info["hours"]) < 1e-3
            total += info["samples"]
    assert total == len(samples)
    schema = {k: type(v) for k, v in next(iter(samples.values())).items()}
    for v in samples.values():  # the same keys and types in every sample, of every source
        assert {k: type(x) for k, x in v.items()} == schema
    assert m["sources"]["cv"]["splits"]["train"]["drops"]["leak_speaker"] == 1
    assert "normalizer_version" in m and m["sources"]["rixvox"]["license"].startswith("CC-BY-4.0")


def test_same_bytes_for_any_worker_count_and_on_rerun(build_a, tmp_path, env):
    one = tmp_path / "one"
    sweaug(env, "build", *ALL_SV, "--out", one, "--workers", "1")
    assert tree_bytes(one) == tree_bytes(build_a)
    before = {p: p.stat().st_mtime_ns for p in one.glob("*/*.tar")}
    p = sweaug(env, "-v", "build", *ALL_SV, "--out", one, "--workers", "2")
    assert "0 to build" in p.stderr
    assert {p: p.stat().st_mtime_ns for p in one.glob("*/*.tar")} == before
    assert tree_bytes(one) == tree_bytes(build_a)


KILLER = """
import os, signal, sys
from sweaug.build import shards
calls = {"n": 0}
orig = shards.ShardWriter.write
def write(self, key, files):
    calls["n"] += 1
    orig(self, key, files)  # the sample is in the shard being written: kill mid-shard
    if calls["n"] == int(os.environ["KILL_AT"]):
        os.kill(os.getpid(), signal.SIGKILL)
shards.ShardWriter.write = write
from sweaug.cli import main
sys.exit(main())
"""


@pytest.mark.parametrize("kill_at", [2, 11])
def test_kill_9_then_resume_gives_the_same_bytes(build_a, tmp_path, env, kill_at):
    import subprocess
    import sys

    out = tmp_path / "killed"
    p = subprocess.run([sys.executable, "-c", KILLER, "build", *map(str, ALL_SV), "--out", str(out),
                        "--workers", "1"], env=dict(env, KILL_AT=str(kill_at)),
                       capture_output=True, text=True)
    assert p.returncode == -9
    assert not (out / "manifest.json").exists()
    # nothing that looks like a complete shard but is not: every *.tar is a recorded, whole shard
    recorded = set()
    for rec in (out / ".sweaug" / "parts").rglob("*.json"):
        recorded |= {s["sha256"] for s in json.loads(rec.read_text())["shards"]}
    from sweaug.files import sha256_file
    for f in out.rglob("*.tar"):
        assert sha256_file(f) in recorded, f
    assert list(out.rglob(".*.tmp*")), "the killed shard should be left as a temporary file"
    sweaug(env, "build", *ALL_SV, "--out", out, "--workers", "2")
    assert tree_bytes(out) == tree_bytes(build_a)
    assert not list(out.rglob(".*.tmp*"))


def test_source_errors_name_the_file_and_keep_finished_shards(tmp_path, env):
    cv = tmp_path / "cv"
    shutil.copytree(CV12, cv)
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, "--no-progress")
    before = tree_bytes(out)
    (cv / "sv-SE" / "dev.tsv").unlink()
    p = sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, check=False)
    assert p.returncode == 2 and "dev.tsv" in p.stderr and "Traceback" not in p.stderr
    assert tree_bytes(out) == before
    (cv / "sv-SE" / "dev.tsv").write_text("client_id\tpath\n")  # no sentence column
    p = sweaug(env, "build", "--sources", "cv", "--cv-dir", cv, "--out", out, check=False)
    assert p.returncode == 2 and "dev.tsv has no column sentence" in p.stderr
    fl = tmp_path / "fleurs"
    shutil.copytree(FIX / "fleurs", fl)
    (fl / "data" / "sv_se" / "audio" / "test.tar.gz").unlink()
    p = sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", fl, "--out", out, check=False)
    assert p.returncode == 2 and "test.tar.gz" in p.stderr and "Traceback" not in p.stderr
    assert tree_bytes(out) == before


def test_rixvox_streams_a_slice_from_the_hub_cache(tmp_path, env):
    """--max-hours takes segments in archive order and never fetches archives it does not need:
    the offline cache lacks train_1.tar.gz, so touching it would fail."""
    seed_hub_cache(env, "KBLab/rixvox", RIXVOX_REV, FIX / "rixvox",
                   subset=lambda d, names: [n for n in names if n == "train_1.tar.gz"])
    out = tmp_path / "rx"
    sweaug(env, "build", "--sources", "rixvox", "--max-hours", "0.0015", "--out", out,
           "--no-progress")
    m = manifest(out)["sources"]["rixvox"]
    assert 0 < m["splits"]["train"]["hours"] <= 0.0015
    assert m["release"].startswith("v1 (KBLab/rixvox@9b2b6066ee18, first 0.0015 h")
    assert all(s["split"] != "train" or json.loads(s["extras"])["dokid"]
               for s in shard_samples(out).values())


def test_eval_folder_guards_training_data(build_a, tmp_path, env):
    """An --eval shard set is registered before any training record is judged: the local
    folder's sentences, built once, then guarded against that very build, all leak."""
    out = tmp_path / "g"
    sweaug(env, "build", "--sources", "local", "--local-dir", FIX / "local", "--out", out,
           "--eval", build_a / "local", "--no-progress")
    m = manifest(out)
    assert m["sources"]["local"]["splits"]["train"]["samples"] == 0
    assert m["sources"]["local"]["splits"]["train"]["drops"]["leak_sentence"] == 6
