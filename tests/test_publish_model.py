"""`sweaug publish --model RUN_DIR/MIX`: a mix that a real (tiny) `sweaug ablate` run trained
is staged as a model repo that transformers (or peft, for a LoRA mix) loads, with a model card
that carries the run's results; a folder without a finished model is refused, naming what is
missing; the upload is the corpus publishing's, with repo_type "model".

The network is faked as in tests/test_publish.py: ``fakehub.FakeHub`` is an in-process Hub (an
``httpx2.MockTransport`` installed with huggingface_hub's ``set_client_factory``) under the
real ``HfApi`` and its real uploader; ``RecordingApi`` is the HfApi surface, passed as
``api=``, recording what it is called with.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, sweaug, tiny_recipe
from fakehub import front_matter, serve
from sweaug.publish import PublishError
from sweaug.publish.model import publish_model

TOKEN = "hf_sweaugFAKEtoken0123456789abcdefXYZ"
REPO = "me/whisper-tiny-sv"
RECIPE = tiny_recipe("tiny", 3, """\
evaluation: {sets: [cv/test], max_samples: 3, bootstrap: 50, max_new_tokens: 8}
mixes:
  - name: cv
    data: {cv/train: 1.0}
  - name: cv-lora
    data: {cv/train: 1.0}
    lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory, env) -> Path:
    """runs/tiny of a finished tiny ablation: baseline, a full fine-tune (cv), a LoRA mix."""
    root = tmp_path_factory.mktemp("pubmodel")
    sweaug(env, "build", "--sources", "cv", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--out", root / "corpus", "--no-progress")
    (root / "r.yaml").write_text(RECIPE)
    sweaug(env, "ablate", root / "r.yaml", "--corpus", root / "corpus", "--out", root / "runs")
    return root / "runs" / "tiny"


def copy_run(run: Path, dest: Path) -> Path:
    shutil.copytree(run, dest, ignore=shutil.ignore_patterns(".sweaug", "optimizer.pt"))
    return dest


def staged(stage: Path) -> dict[str, bytes]:
    return {f.relative_to(stage).as_posix(): f.read_bytes() for f in stage.rglob("*")
            if f.is_file() and ".cache" not in f.parts and f.name != ".sweaug-stage"}


def usage_code(readme: Path, stage: Path) -> str:
    """The card's ```python block, loading from the stage folder instead of the Hub."""
    code = re.search(r"## Usage\n.*?```python\n(.*?)\n```", readme.read_text(), re.S).group(1)
    assert f'"{REPO}"' in code
    return code.replace(f'"{REPO}"', repr(str(stage)))


def write_clip(corpus: Path, path: Path) -> str:
    """A test clip of the corpus as clip.wav; returns its transcript."""
    import io

    import soundfile as sf

    from sweaug.build.shards import iter_samples

    shard = sorted((corpus / "cv").glob("test-*.tar"))[0]
    key, files = next(iter_samples(shard))
    audio, sr = sf.read(io.BytesIO(files["flac"]), dtype="float32")
    sf.write(path, audio, sr)
    return json.loads(files["json"])["text"]


# -------------------------------------------------------------------- a full fine-tune

def test_dry_run_stages_a_model_that_transformers_loads(run, env, tmp_path, monkeypatch):
    import torch
    from huggingface_hub import ModelCard
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    mix = run / "cv"
    p = sweaug(env, "publish", "--model", mix, "--repo-id", REPO, "--dry-run")
    assert "a model fine-tuned from tiny-random, licence cc0-1.0" in p.stdout
    stage = mix / ".sweaug" / "publish" / "me--whisper-tiny-sv"
    listed = {line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")}
    files = set(staged(stage))
    assert listed == files
    assert {"README.md", "config.json", "generation_config.json", "model.safetensors",
            "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"} <= files
    assert not any(f.startswith("adapter_") for f in files)
    assert os.path.samefile(stage / "model.safetensors", mix / "model" / "model.safetensors")

    # the staged folder loads and transcribes like the mix's own model
    model = WhisperForConditionalGeneration.from_pretrained(str(stage)).eval()
    proc = WhisperProcessor.from_pretrained(str(stage))
    ref = WhisperForConditionalGeneration.from_pretrained(str(mix / "model")).eval()
    audio = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    x = proc(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(x, language="sv", task="transcribe", max_new_tokens=6)
        assert torch.equal(ids, ref.generate(x, language="sv", task="transcribe",
                                             max_new_tokens=6))
    assert isinstance(proc.batch_decode(ids, skip_special_tokens=True)[0], str)

    # the card: front matter (huggingface_hub reads its model-index back), the mix's row
    res = json.loads((mix / "results.json").read_text())
    meta = front_matter(stage / "README.md")
    assert meta["language"] == "sv" and meta["license"] == "cc0-1.0"
    assert meta["library_name"] == "transformers"
    assert meta["pipeline_tag"] == "automatic-speech-recognition"
    assert {"whisper", "automatic-speech-recognition"} <= set(meta["tags"])
    assert "base_model" not in meta  # tiny-random is not on the Hub
    card = ModelCard.load(stage / "README.md")
    wer = {r.metric_name.split(" (")[0]: r.metric_value for r in card.data.eval_results}
    assert wer == {"WER": round(100 * res["eval"]["cv/test"]["wer"], 2),
                   "Normalized WER": round(100 * res["eval"]["cv/test"]["nwer"], 2)}
    assert all(r.dataset_split == "test" and r.task_type == "automatic-speech-recognition"
               for r in card.data.eval_results)
    body = (stage / "README.md").read_text()
    e = res["eval"]["cv/test"]
    row = (f"| **cv (this model)** | {100 * e['wer']:.1f} | [{100 * e['wer_lo']:.1f}, "
           f"{100 * e['wer_hi']:.1f}] | {100 * e['nwer']:.1f} |")
    assert row in body, body
    for needle in ("| baseline (no fine-tuning) |", "| cv-lora |", "### cv/test",
                   "## Training data", "| cv | 30 |", "CC0-1.0", "## Training settings",
                   "| learning_rate | 0.002 |", "| max_steps | 4 |", "## How it ran",
                   "Trained with: cpu, fp32, adamw_torch", "Evaluated with: cpu, fp32",
                   "WhisperForConditionalGeneration.from_pretrained"):
        assert needle in body, needle

    # the card's usage snippet runs as written (on the stage instead of the Hub)
    monkeypatch.chdir(tmp_path)
    write_clip(run.parent.parent / "corpus", tmp_path / "clip.wav")
    exec(compile(usage_code(stage / "README.md", stage), "card", "exec"), {})

    # a re-run: the card is deterministic, nothing rewritten
    mtime = (stage / "README.md").stat().st_mtime_ns
    sweaug(env, "publish", "--model", mix, "--repo-id", REPO, "--dry-run")
    assert (stage / "README.md").stat().st_mtime_ns == mtime


# ------------------------------------------------------------------------ a LoRA mix

def test_a_lora_mix_stages_its_adapter(run, env, tmp_path, monkeypatch):
    import torch
    from transformers import WhisperForConditionalGeneration

    mix, stage = run / "cv-lora", tmp_path / "stage"
    p = sweaug(env, "publish", "--model", mix, "--repo-id", REPO, "--dry-run", "--stage-dir",
               stage)
    assert "a LoRA adapter of tiny-random" in p.stdout
    files = set(staged(stage))
    assert {"README.md", "adapter_config.json", "adapter_model.safetensors",
            "preprocessor_config.json", "tokenizer.json", "generation_config.json"} <= files
    assert not files & {"model.safetensors", "config.json"}
    res = json.loads((mix / "results.json").read_text())
    ckpt = mix / "checkpoints" / res["run_hash"] / f"checkpoint-{res['train']['steps']}"
    assert os.path.samefile(stage / "adapter_model.safetensors",
                            ckpt / "adapter_model.safetensors")
    meta = front_matter(stage / "README.md")
    assert meta["library_name"] == "peft" and {"lora", "peft"} <= set(meta["tags"])
    body = (stage / "README.md").read_text()
    assert "| **cv-lora (this model)** |" in body and "PeftModel.from_pretrained" in body
    assert "LoRA adapter (r 4, alpha 8, on q_proj, v_proj)" in body

    # the card's snippet (peft on the rebuilt base) runs; merged, it is the mix's model/
    monkeypatch.chdir(tmp_path)
    write_clip(run.parent.parent / "corpus", tmp_path / "clip.wav")
    ns: dict = {}
    exec(compile(usage_code(stage / "README.md", stage), "card", "exec"), ns)
    merged = ns["model"].merge_and_unload().state_dict()
    ref = WhisperForConditionalGeneration.from_pretrained(str(mix / "model")).state_dict()
    assert set(ref) <= set(merged)
    assert all(torch.allclose(merged[k], ref[k], atol=1e-6) for k in ref)

    # --merged: the merged model instead (loads with transformers alone)
    stage2 = tmp_path / "merged"
    p = sweaug(env, "publish", "--model", mix, "--repo-id", REPO, "--dry-run", "--merged",
               "--stage-dir", stage2)
    assert "a model fine-tuned from tiny-random" in p.stdout
    assert {"model.safetensors", "config.json"} <= set(staged(stage2))
    assert not any(f.startswith("adapter_") for f in staged(stage2))
    assert "with LoRA, merged into the weights" in (stage2 / "README.md").read_text()
    WhisperForConditionalGeneration.from_pretrained(str(stage2))


def test_the_adapter_of_the_best_checkpoint_when_training_loaded_it(run, env, tmp_path):
    """With ``load_best_model_at_end`` model/ is the best checkpoint's (results.json's
    ``train.best``): so is the adapter published."""
    r = copy_run(run, tmp_path / "tiny")
    res = json.loads((r / "cv-lora" / "results.json").read_text())
    folder = r / "cv-lora" / "checkpoints" / res["run_hash"]
    (folder / "checkpoint-4").rename(folder / "checkpoint-2")
    res["train"]["best"] = {"metric": "loss", "step": 2, "checkpoint": "checkpoint-2",
                            "loaded": True}
    (r / "cv-lora" / "results.json").write_text(json.dumps(res))
    stage = tmp_path / "stage"
    sweaug(env, "publish", "--model", r / "cv-lora", "--repo-id", REPO, "--dry-run",
           "--stage-dir", stage)
    assert os.path.samefile(stage / "adapter_model.safetensors",
                            folder / "checkpoint-2" / "adapter_model.safetensors")


# ---------------------------------------------------------------------------- errors

def test_folders_without_a_finished_model_are_refused(run, env, tmp_path):
    def fails(*args, match):
        p = sweaug(env, "publish", *args, check=False)
        assert p.returncode == 2, (p.stdout, p.stderr)
        assert re.search(match, p.stderr), p.stderr
        assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
        return p

    r = copy_run(run, tmp_path / "tiny")
    dry = ("--repo-id", REPO, "--dry-run")
    # no report yet (a cluster job before `sweaug report`): the card has this model's rows
    (r / "results.csv").unlink()
    sweaug(env, "publish", "--model", r / "cv", *dry)
    body = (r / "cv" / ".sweaug" / "publish" / "me--whisper-tiny-sv" / "README.md").read_text()
    assert "results.csv) is not there" in body and "| **cv (this model)** |" in body
    assert "| cv-lora |" not in body
    fails("--model", r / "baseline", *dry, match="the baseline.*nothing trained to publish")
    fails("--model", r, *dry, match=r"a run folder; name one of its mixes.*cv, cv-lora")
    fails("--model", tmp_path / "nope", *dry, match="not a folder")
    fails("--model", r / "cv", "--repo-id", "nope", "--dry-run", match="owner/name")
    fails("--model", r / "cv", *dry, "--merged", match="not trained with LoRA")
    fails("--model", r / "cv", *dry, "--include-common-voice", match="are for a corpus")
    fails(r.parent, "--model", r / "cv", *dry, match="not both")
    fails("--model", r / "cv", *dry, "--license", "Not A Licence", match="--license")

    (r / "cv" / "model" / "model.safetensors").unlink()
    fails("--model", r / "cv", *dry, match=r"no finished model to publish: missing model "
                                           r"weights \(model/model.safetensors\)")
    (r / "cv" / "model" / "preprocessor_config.json").unlink()
    fails("--model", r / "cv", *dry, match=r"missing model weights .*; the feature extractor")
    (r / "cv" / "results.json").unlink()
    fails("--model", r / "cv", *dry, match=r"no finished model to publish: results.json is "
                                           r"missing \(model/ is there")
    shutil.rmtree(r / "cv" / "model")
    fails("--model", r / "cv", *dry, match="results.json is missing;")
    # a LoRA mix whose final checkpoint (its adapter) was deleted: --merged still works
    ckpt = next((r / "cv-lora" / "checkpoints").glob("*/checkpoint-*"))
    (ckpt / "adapter_model.safetensors").unlink()
    fails("--model", r / "cv-lora", *dry, match=r"no LoRA adapter to publish: checkpoints/\w+/"
                                                r"checkpoint-4/adapter_model.safetensors is "
                                                r"missing.*--merged")
    shutil.rmtree(r / "cv-lora" / "checkpoints")  # settings.json too: LoRA known from the recipe
    fails("--model", r / "cv-lora", *dry, match=r"checkpoint-4/ \(the checkpoint that holds "
                                                r"the adapter\) is missing.*--merged")
    sweaug(env, "publish", "--model", r / "cv-lora", *dry, "--merged")
    # training data of several (or unknown) licences: --license is asked for
    res = json.loads((r / "cv-lora" / "results.json").read_text())
    res["data"]["by_source"]["fleurs"] = {"samples": 4, "hours": 0.01, "augmented": 0}
    (r / "cv-lora" / "results.json").write_text(json.dumps(res))
    fails("--model", r / "cv-lora", *dry, "--merged",
          match=r"licence cannot be taken from its training data \(cv: CC0-1.0.*fleurs: "
                r"unknown\): pass --license")
    p = sweaug(env, "publish", "--model", r / "cv-lora", *dry, "--merged", "--license",
               "cc-by-4.0")
    assert "licence cc-by-4.0" in p.stdout
    stage = r / "cv-lora" / ".sweaug" / "publish" / "me--whisper-tiny-sv"
    assert front_matter(stage / "README.md")["license"] == "cc-by-4.0"
    # and the corpus form says what it needs
    fails("--repo-id", REPO, "--dry-run", match="missing CORPUS .*--model RUN_DIR/MIX")
    fails(r.parent, "--repo-id", REPO, "--license", "mit", match="are for --model")


# ------------------------------------------------------------------ upload: fake Hub

@pytest.fixture
def hub(monkeypatch, tmp_path):
    yield from serve(monkeypatch, tmp_path, TOKEN, "models")


def test_upload_with_the_real_hfapi(run, hub, tmp_path):
    from huggingface_hub import HfApi

    if hasattr(HfApi, "upload_large_folder"):
        pytest.skip("this huggingface_hub uploads with upload_large_folder (see the next test)")
    stage, msgs = tmp_path / "stage", []
    r = publish_model(run / "cv", REPO, private=True, stage_dir=stage, progress=msgs.append)
    assert r.uploaded and r.upload_method == "upload_folder"
    assert r.url == f"https://huggingface.co/{REPO}"
    assert hub.created[0]["type"] == "model" and hub.repos[REPO]["private"] is True
    assert hub.repos[REPO]["files"] == staged(stage)
    n = len(hub.commits)
    publish_model(run / "cv", REPO, stage_dir=stage)  # nothing left to send
    assert len(hub.commits) == n
    assert hub.auth == {f"Bearer {TOKEN}"} and all(TOKEN not in m for m in msgs)
    # the same repo now holds a full model: publishing the adapter there is refused
    with pytest.raises(PublishError, match=r"already holds weight file\(s\) that this model "
                                           r"does not stage \(model.safetensors\)"):
        publish_model(run / "cv-lora", REPO, stage_dir=tmp_path / "lora")
    assert len(hub.commits) == n


class RecordingApi:
    """HfApi's surface as publish uses it, recording the calls (repo types included)."""

    def __init__(self, remote=()):
        self.remote = list(remote)
        self.calls: list[tuple] = []

    def list_repo_files(self, repo_id, repo_type=None):
        self.calls.append(("list_repo_files", repo_id, repo_type))
        return self.remote

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))

    def upload_folder(self, repo_id, folder_path, repo_type=None, ignore_patterns=None,
                      commit_message=None):
        files = sorted(p.relative_to(folder_path).as_posix() for p in Path(folder_path).rglob("*")
                       if p.is_file())
        self.calls.append(("upload_folder", repo_id, repo_type, tuple(ignore_patterns), files))


def test_the_upload_path_is_the_corpus_one_with_repo_type_model(run, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    api = RecordingApi(remote=[".gitattributes", "README.md"])
    r = publish_model(run / "cv-lora", REPO, stage_dir=tmp_path / "s", api=api)
    assert r.uploaded and r.kind == "adapter"
    assert [c[:3] for c in api.calls] == [("list_repo_files", REPO, "model"),
                                          ("create_repo", REPO, "model"),
                                          ("upload_folder", REPO, "model")]
    assert api.calls[1][3:] == (None, True)  # public unless asked (or the org's default)
    up = api.calls[2]
    assert ".sweaug-stage" in up[3] and "adapter_model.safetensors" in up[4]
    # a repo holding an adapter config: publishing a full model there is refused
    api = RecordingApi(remote=["adapter_config.json", "adapter_model.safetensors"])
    with pytest.raises(PublishError, match="adapter_config.json, adapter_model.safetensors"):
        publish_model(run / "cv", REPO, stage_dir=tmp_path / "s2", api=api)
    assert [c[0] for c in api.calls] == ["list_repo_files"]
    # no token: refused before anything
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-home"))
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    with pytest.raises(PublishError, match="no Hugging Face token"):
        publish_model(run / "cv", REPO, stage_dir=tmp_path / "s3", api=RecordingApi())
