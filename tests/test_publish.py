"""`sweaug publish`: the staged repo loads with datasets' own resolution (the logic the Hub
uses), Common Voice stays out unless asked for, the upload resumes, errors are clear and the
token never shows.

The network is faked at two levels:

* ``fakehub.FakeHub``: an in-process Hub (an ``httpx2.MockTransport`` installed with huggingface_hub's
  ``set_client_factory``). The real ``HfApi`` runs end to end on top of it: ``list_repo_files``,
  ``hf_hub_download``, ``create_repo``, and the real resumable uploader of the installed
  huggingface_hub (``upload_folder``'s multi-commit pipeline in 2.x; the fake answers every
  preupload with "regular", so hf_xet's own network layer is never needed).
* ``LargeFolderApi``: the HfApi surface with ``upload_large_folder`` as huggingface_hub 0.25-1.x
  implement it, keeping per-file state in ``<folder>/.cache/huggingface/upload/<path>.metadata``
  through huggingface_hub's own ``_local_folder`` helpers.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from conftest import CV12, FIX, ROOT, sweaug
from fakehub import front_matter, serve
from sweaug.publish import PublishError, publish
from sweaug.build.shards import iter_samples

TOKEN = "hf_sweaugFAKEtoken0123456789abcdefXYZ"
DEFAULT_RECIPE = ROOT / "recipes" / "augment" / "default.yaml"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("pub") / "corpus"
    sweaug(env, "build", "--sources", "cv,fleurs,rixvox", "--cv-dir", CV12, "--fleurs-dir",
           FIX / "fleurs", "--rixvox-dir", FIX / "rixvox", "--out", out, "--no-progress")
    for src in ("fleurs", "cv"):
        sweaug(env, "augment", out / src, "--recipe", DEFAULT_RECIPE, "--copies", "1", "--seed",
               "1", "--out", out / f"{src}-aug", "--no-progress")
    return out


def copy_corpus(corpus: Path, dest: Path) -> Path:
    shutil.copytree(corpus, dest, ignore=shutil.ignore_patterns(".sweaug"))
    return dest


def manifests(corpus: Path) -> dict[str, dict]:
    """config name -> its splits in the manifests."""
    out = dict(json.loads((corpus / "manifest.json").read_text())["sources"])
    for m in corpus.glob("*/manifest.json"):
        out[m.parent.name] = next(iter(json.loads(m.read_text())["sources"].values()))
    return {k: v["splits"] for k, v in out.items()}


def conforms(value, feature, where="json") -> None:
    """``value`` has exactly the keys and types of the datasets ``feature``."""
    from datasets import List, Value

    if isinstance(feature, dict):
        assert isinstance(value, dict) and set(value) == set(feature), (where, value)
        for k in feature:
            conforms(value[k], feature[k], f"{where}.{k}")
    elif isinstance(feature, List):
        assert isinstance(value, list), where
        for v in value:
            conforms(v, feature.feature, f"{where}[]")
    else:
        assert isinstance(feature, Value), where
        py = {"string": str, "int64": int, "float64": (float, int), "bool": bool}[feature.dtype]
        assert isinstance(value, py) and not (py is int and isinstance(value, bool)), (where, value)


def decoded_rate(audio) -> int:
    return audio["sampling_rate"] if isinstance(audio, dict) else \
        audio.get_all_samples().sample_rate


# ---------------------------------------------------------------------------- staging

def test_dry_run_stages_a_repo_that_datasets_loads(corpus, env, tmp_path):
    from datasets import List, Value, get_dataset_config_names, load_dataset
    from datasets.info import DatasetInfosDict
    from huggingface_hub import DatasetCard

    p = sweaug(env, "publish", corpus, "--repo-id", "me/x", "--dry-run")
    out = p.stdout + p.stderr
    assert TOKEN not in out
    # Common Voice is left out by default, saying why, with the flag to override
    for name in ("cv", "cv-aug"):
        assert f"left out {name}: Common Voice" in out
    assert "Mozilla Data Collective" in out and "--include-common-voice" in out
    stage = corpus / ".sweaug" / "publish" / "me--x"
    listed = {line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")}
    files = {f.relative_to(stage).as_posix() for f in stage.rglob("*") if f.is_file()
             and ".cache" not in f.parts and f.name != ".sweaug-stage"}
    assert listed == files
    assert not any(f.startswith(("cv/", "cv-aug/")) for f in files)
    assert {"README.md", "manifest.json", "leakage.tsv", "fleurs-aug/manifest.json"} <= files
    assert os.path.samefile(stage / "fleurs" / "train-000000.tar",
                            corpus / "fleurs" / "train-000000.tar")  # hard links

    # the card: configs (one default), dataset_info features for every config
    meta = front_matter(stage / "README.md")
    configs = {c["config_name"]: c for c in meta["configs"]}
    assert set(configs) == {"fleurs", "rixvox", "fleurs-aug"}
    assert [c for c in configs if configs[c].get("default")] == ["fleurs"]
    assert {i["config_name"] for i in meta["dataset_info"]} == set(configs)
    assert all(i["features"] for i in meta["dataset_info"])
    assert meta["license"] == "cc-by-4.0" and meta["language"] == ["sv"]
    body = (stage / "README.md").read_text()
    for needle in ("Normalizer version `sv-2`", 'load_dataset("me/x", "fleurs"', "streaming=True",
                   "@article{fleurs2022arxiv", "rekathati2023rixvox", "| fleurs | train | 4 |",
                   "Mozilla Data Collective"):
        assert needle in body, needle
    # datasets reads the card's dataset_info back to the same YAML (canonical form)
    infos = DatasetInfosDict.from_dataset_card_data(DatasetCard.load(stage / "README.md").data)
    for info in meta["dataset_info"]:
        assert infos[info["config_name"]]._to_yaml_dict() == \
            {k: v for k, v in info.items() if k != "config_name"} | \
            {"config_name": info["config_name"]}
    published = json.loads((stage / "manifest.json").read_text())
    assert set(published["sources"]) == {"fleurs", "rixvox"}
    assert "cv" in published["published"]["left_out"]

    # every config and split loads with datasets' own resolution, counts = the manifests
    assert get_dataset_config_names(str(stage)) == ["fleurs", "rixvox", "fleurs-aug"]
    splits = manifests(corpus)
    for name in configs:
        ds = load_dataset(str(stage), name, cache_dir=str(tmp_path / "ds"))
        assert {k: v.num_rows for k, v in ds.items()} == \
            {k: v["samples"] for k, v in splits[name].items()}
        feats = ds["train"].features
        assert feats["flac"].sampling_rate == 16000
        assert decoded_rate(ds["train"][0]["flac"]) == 16000
        for split in ds:  # the card's features are exactly what every sample holds
            for shard in sorted((stage / name).glob(f"{split}-*.tar")):
                for key, sample in iter_samples(shard):
                    assert "." not in key
                    conforms(json.loads(sample["json"]), feats["json"])
        if name != "fleurs-aug":  # = what datasets infers from the shards themselves
            inferred = load_dataset("webdataset", data_files=str(stage / name / "test-*.tar"),
                                    split="train", cache_dir=str(tmp_path / "ds2")).features
            assert inferred["json"] == feats["json"]
    # an empty `applied` list (no transform fired) still has its element type
    aug = load_dataset(str(stage), "fleurs-aug", split="train", cache_dir=str(tmp_path / "ds"))
    assert aug.features["json"]["augment"]["applied"] == \
        List({"name": Value("string"), "parameters": Value("string")})
    # what the users run: the default config, streamed
    stream = load_dataset(str(stage), split="train", streaming=True)
    rows = list(stream)
    assert len(rows) == splits["fleurs"]["train"]["samples"]
    assert rows[0]["json"]["text"] and decoded_rate(rows[0]["flac"]) == 16000


def test_common_voice_only_with_the_flag_and_stage_is_synchronised(corpus, env, tmp_path):
    from datasets import load_dataset

    stage = tmp_path / "stage"
    p = sweaug(env, "publish", corpus, "--repo-id", "me/y", "--dry-run", "--stage-dir", stage,
               "--include-common-voice")
    assert "left out" not in p.stdout
    meta = front_matter(stage / "README.md")
    assert {c["config_name"] for c in meta["configs"]} == {"cv", "fleurs", "rixvox", "cv-aug",
                                                           "fleurs-aug"}
    assert sorted(meta["license"]) == ["cc-by-4.0", "cc0-1.0"]
    ds = load_dataset(str(stage), "cv-aug", cache_dir=str(tmp_path / "ds"))
    assert ds["validation"].num_rows == manifests(corpus)["cv-aug"]["validation"]["samples"]
    shard, readme = stage / "fleurs" / "train-000000.tar", stage / "README.md"
    before = (shard.stat().st_ino, (stage / "manifest.json").stat().st_mtime_ns)
    # the same stage without the flag: CV files go, unchanged files stay untouched
    (stage / ".cache" / "huggingface").mkdir(parents=True)
    (stage / ".cache" / "huggingface" / "state").write_text("kept")
    sweaug(env, "publish", corpus, "--repo-id", "me/y", "--dry-run", "--stage-dir", stage)
    assert not (stage / "cv").exists() and not (stage / "cv-aug").exists()
    assert shard.stat().st_ino == before[0]
    assert (stage / ".cache" / "huggingface" / "state").read_text() == "kept"
    assert "cv" not in {c["config_name"] for c in front_matter(readme)["configs"]}
    sweaug(env, "publish", corpus, "--repo-id", "me/y", "--dry-run", "--stage-dir", stage)
    assert (stage / "manifest.json").stat().st_mtime_ns != before[1]  # changed once (no CV)
    mtime = readme.stat().st_mtime_ns
    sweaug(env, "publish", corpus, "--repo-id", "me/y", "--dry-run", "--stage-dir", stage)
    assert readme.stat().st_mtime_ns == mtime  # deterministic card, not rewritten
    # a folder that is not a stage is never touched
    other = tmp_path / "mine"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    p = sweaug(env, "publish", corpus, "--repo-id", "me/y", "--dry-run", "--stage-dir", other,
               check=False)
    assert p.returncode == 2 and "not a sweaug stage" in p.stderr
    assert (other / "notes.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- errors

def test_errors_are_clear(corpus, env, tmp_path):
    def fails(*args, e=env, match):
        p = sweaug(e, "publish", *args, check=False)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert re.search(match, p.stderr), p.stderr
        assert "Traceback" not in p.stderr and TOKEN not in p.stdout + p.stderr
        return p

    # no token: HF_TOKEN unset, an empty HF_HOME
    (tmp_path / "hf-home").mkdir()
    bare = {k: v for k, v in env.items()
            if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_OIDC_RESOURCE")}
    bare["HF_HOME"] = str(tmp_path / "hf-home")
    fails(corpus, "--repo-id", "me/x", e=bare, match="no Hugging Face token.*HF_TOKEN")
    # a corrupt shard (in a copy)
    bad = copy_corpus(corpus, tmp_path / "bad")
    shard = bad / "rixvox" / "train-000001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    fails(bad, "--repo-id", "me/x", "--dry-run",
          match=r"train-000001.tar does not match the sha256 .*refusing to publish corrupt data")
    shard.unlink()
    fails(bad, "--repo-id", "me/x", "--dry-run", match="missing")
    # an empty corpus: no manifest; a manifest without shards; only CV without the flag
    (tmp_path / "empty").mkdir()
    fails(tmp_path / "empty", "--repo-id", "me/x", "--dry-run", match="no manifest.json")
    m = json.loads((corpus / "manifest.json").read_text())
    only = tmp_path / "only-cv"
    only.mkdir()
    (only / "manifest.json").write_text(json.dumps(dict(m, sources={})))
    fails(only, "--repo-id", "me/x", "--dry-run", match="nothing to publish")
    (only / "manifest.json").write_text(json.dumps(dict(m, sources={"cv": m["sources"]["cv"]})))
    fails(only, "--repo-id", "me/x", "--dry-run", match="nothing to publish.*include-common-voice")
    fails(corpus, "--repo-id", "nope", "--dry-run", match="owner/name")


def test_samples_that_do_not_fit_the_schema_are_refused(corpus, tmp_path):
    from sweaug.build.shards import ShardWriter, sample_json

    bad = copy_corpus(corpus, tmp_path / "c")
    shard = bad / "rixvox" / "train-000001.tar"
    samples = list(iter_samples(shard))
    w = ShardWriter(lambda i: shard)
    for i, (key, files) in enumerate(samples):
        meta = json.loads(files["json"])
        if i == 1:
            meta["duration"] = str(meta["duration"])
        w.write(key, [("flac", files["flac"]), ("json", sample_json(meta))])
    (info,) = w.close()
    m = json.loads((bad / "manifest.json").read_text())
    entry = m["sources"]["rixvox"]["splits"]["train"]["shards"][1]
    entry.update(sha256=info.sha256, bytes=info.bytes)
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(PublishError, match=r"does not have the schema .* at duration: type string"):
        publish(bad, "me/x", dry_run=True)


# ----------------------------------------------------------------- upload: fake Hub

@pytest.fixture
def hub(monkeypatch, tmp_path):
    yield from serve(monkeypatch, tmp_path, TOKEN, "datasets")


def staged(stage: Path) -> dict[str, bytes]:
    return {f.relative_to(stage).as_posix(): f.read_bytes() for f in stage.rglob("*")
            if f.is_file() and ".cache" not in f.parts and f.name != ".sweaug-stage"}


def test_upload_resumes_with_the_real_hfapi(corpus, hub, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    if hasattr(HfApi, "upload_large_folder"):
        pytest.skip("this huggingface_hub uploads with upload_large_folder (see the next test)")
    from huggingface_hub import _upload_pipeline

    monkeypatch.setattr(_upload_pipeline, "COMMIT_SIZE_SCALE", [3] * 10)  # 3 files per commit
    stage, msgs = tmp_path / "stage", []
    hub.fail_after = 7
    with pytest.raises(PublishError) as e:
        publish(corpus, "me/x", private=True, stage_dir=stage, progress=msgs.append)
    assert "Re-run the same command to resume" in str(e.value)
    first = [p for c in hub.commits for p in c]
    assert 0 < len(first) <= 7 and hub.repos["me/x"]["private"] is True
    n1 = len(hub.commits)
    hub.fail_after = None
    r = publish(corpus, "me/x", private=True, stage_dir=stage, progress=msgs.append)
    second = [p for c in hub.commits[n1:] for p in c]
    assert r.uploaded and r.upload_method == "upload_folder"
    assert not set(first) & set(second)  # only what was missing
    files = staged(stage)
    assert sorted(first + second) == sorted(files)
    assert hub.repos["me/x"]["files"] == files
    n = len(hub.commits)
    publish(corpus, "me/x", stage_dir=stage)  # nothing left to send
    assert len(hub.commits) == n
    assert hub.auth == {f"Bearer {TOKEN}"}
    assert all(TOKEN not in m for m in msgs) and TOKEN not in str(e.value)


def test_remote_layout_mismatch_is_refused(corpus, hub, tmp_path):
    from click.testing import CliRunner

    from sweaug.cli import main

    def cli(*args):
        return CliRunner().invoke(main, ["publish", str(corpus), "--repo-id", *args,
                                         "--stage-dir", str(tmp_path / args[0].replace("/", "-"))])

    # a repo holding shards this corpus does not stage (here: published with CV before)
    hub.repos["me/old"] = {"files": {"cv/train-000000.tar": b"x", "README.md": b"hi"}}
    r = cli("me/old")
    assert r.exit_code == 2 and "different layout" in r.output and "cv/train-000000.tar" in r.output
    assert "Traceback" not in r.output and TOKEN not in r.output
    # a README whose configs differ
    card = "---\nconfigs:\n- config_name: fleurs\n  data_files: data/fleurs/*.parquet\n---\n"
    hub.repos["me/other"] = {"files": {"README.md": card.encode()}}
    r = cli("me/other")
    assert r.exit_code == 2 and "config 'fleurs' with other data files" in r.output
    card = "---\nconfigs:\n- config_name: mine\n  data_files: x/*.tar\n---\n"
    hub.repos["me/other"] = {"files": {"README.md": card.encode()}}
    r = cli("me/other")
    assert r.exit_code == 2 and "declares config 'mine'" in r.output
    assert not hub.commits  # nothing was uploaded
    from huggingface_hub import HfApi

    if hasattr(HfApi, "upload_large_folder"):
        return  # FakeHub does not speak that uploader's LFS protocol
    # a README without configs (created on the website) is fine, and so is an earlier subset
    hub.repos["me/new"] = {"files": {"README.md": b"# my dataset\n", ".gitattributes": b""}}
    r = cli("me/new")
    assert r.exit_code == 0, r.output
    assert "uploaded to https://huggingface.co/datasets/me/new" in r.output
    # the Hub refusing the token: reported without it
    hub.reject_token = True
    r = cli("me/new")
    assert r.exit_code == 2 and "401" in r.output and TOKEN not in r.output


# ------------------------------------------------- upload: upload_large_folder (hub < 2)

class LargeFolderApi:
    """HfApi's surface as publish uses it, with ``upload_large_folder`` modelled on
    huggingface_hub 0.25-1.x: every file's state lives in
    ``<folder>/.cache/huggingface/upload/<path>.metadata`` (read and written with
    huggingface_hub's own helpers, which invalidate it when the file is newer); a file whose
    metadata says committed is skipped, the others are hashed, uploaded and committed, the
    state saved after each step. ``fail_after`` files into a call, the connection drops."""

    def __init__(self, tmp: Path, fail_after=None):
        self.tmp = tmp
        self.files: dict[str, bytes] = {}
        self.sent: list[list[str]] = []
        self.fail_after = fail_after
        self.created = []

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        self.created.append((repo_id, repo_type, private, exist_ok))

    def list_repo_files(self, repo_id, repo_type=None):
        return sorted(self.files)

    def hf_hub_download(self, repo_id, filename, repo_type=None):
        path = Path(self.tmp) / filename
        path.write_bytes(self.files[filename])
        return str(path)

    def upload_large_folder(self, repo_id, folder_path, repo_type=None, ignore_patterns=None,
                            **kwargs):
        from huggingface_hub._local_folder import get_local_upload_paths, read_upload_metadata
        from huggingface_hub.utils import filter_repo_objects
        from huggingface_hub.utils._paths import DEFAULT_IGNORE_PATTERNS

        folder = Path(folder_path)
        paths = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        sent = []
        self.sent.append(sent)
        for rel in filter_repo_objects(paths, ignore_patterns=list(ignore_patterns or [])
                                       + DEFAULT_IGNORE_PATTERNS):
            meta = read_upload_metadata(folder, rel)
            if meta.is_committed:
                continue
            if self.fail_after is not None and len(sent) >= self.fail_after:
                raise ConnectionResetError("connection reset by peer")
            state = get_local_upload_paths(folder, rel)
            data = (folder / rel).read_bytes()
            meta.sha256 = hashlib.sha256(data).hexdigest()
            meta.upload_mode = "lfs" if rel.endswith(".tar") else "regular"
            meta.should_ignore = False
            meta.save(state)
            self.files[rel] = data
            meta.is_uploaded = meta.is_committed = True
            meta.save(state)
            sent.append(rel)


def test_upload_large_folder_resumes_from_its_local_state(corpus, monkeypatch, tmp_path):
    pytest.importorskip("huggingface_hub._local_folder").read_upload_metadata  # noqa: B018
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    stage = tmp_path / "stage"
    api = LargeFolderApi(tmp_path, fail_after=5)
    with pytest.raises(PublishError, match="ConnectionResetError.*Re-run the same command"):
        publish(corpus, "me/x", stage_dir=stage, api=api, private=True)
    assert len(api.sent[0]) == 5
    assert (stage / ".cache" / "huggingface" / "upload").is_dir()
    api.fail_after = None
    r = publish(corpus, "me/x", stage_dir=stage, api=api, private=True)
    assert r.uploaded and r.upload_method == "upload_large_folder"
    assert not set(api.sent[0]) & set(api.sent[1])
    assert api.files == staged(stage)
    assert api.created[-1] == ("me/x", "dataset", True, True)
    publish(corpus, "me/x", stage_dir=stage, api=api)
    assert api.sent[2] == []  # the card is deterministic, shards unchanged: nothing to send


def test_a_set_augmented_from_a_cv_augmented_set_is_common_voice_too(corpus, tmp_path):
    from sweaug.publish import CV_REASON, plan

    c = copy_corpus(corpus, tmp_path / "c")
    shutil.copytree(c / "cv-aug", c / "cv-aug-2")
    m = json.loads((c / "cv-aug-2" / "manifest.json").read_text())
    m["input"].update(source="cv-aug", manifest="../cv-aug/manifest.json")
    (c / "cv-aug-2" / "manifest.json").write_text(json.dumps(m))
    p = plan(c)
    assert p.excluded == {"cv": CV_REASON, "cv-aug": CV_REASON, "cv-aug-2": CV_REASON}
    assert {x.name for x in plan(c, include_common_voice=True).configs} == \
        {"cv", "fleurs", "rixvox", "cv-aug", "cv-aug-2", "fleurs-aug"}
