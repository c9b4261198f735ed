"""`sweaug ablate`: recipe schema checked before any file, dry-run plan, and a real (tiny)
fine-tune per mix with report, CSV and plot; finished mixes are skipped on re-run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from conftest import ROOT, sweaug

TINY = """name: tiny
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 3
training: {per_device_train_batch_size: 8, gradient_accumulation_steps: 1, learning_rate: 0.002,
           warmup_steps: 3, max_steps: 24, seconds: 5.0, logging_steps: 4, save_steps: 12,
           dataloader_num_workers: 0}
evaluation: {sets: [cv/test, fleurs/test], max_samples: 6, bootstrap: 200}
reference: cv
mixes:
  - name: cv
    data: {cv/train: 1.0}
  - name: cv+fleurs+aug
    data: {cv/train: 1.0, fleurs/train: 0.5}
    augment: %s
  - name: cv-lora
    data: {cv/train: 1.0}
    lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
    training: {max_steps: 6, save_steps: 6}
"""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("ab") / "corpus"
    sweaug(env, "build", "--sources", "cv,fleurs", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--fleurs-dir", ROOT / "sweaug" / "sample" / "fleurs", "--out", out, "--no-progress")
    return out


def _recipe(tmp_path, text: str) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("text,message", [
    ("name: x\nmixes: [{name: a, data: {cv/train: 1}}]\nevaluation: {sets: [cv/test]}\nlearning_rate: 1\n",
     r"r.yaml:4: unknown key 'learning_rate'"),
    ("name: x\nmixes:\n  - {name: a, data: {cv/train: 1}, trainig: {}}\nevaluation: {sets: [cv/test]}\n",
     r"r.yaml:3: unknown key mixes\[0\].'trainig'"),
    ("name: x\nmixes:\n  - {name: a, data: {cv/train: -1}}\nevaluation: {sets: [cv/test]}\n",
     "weight of 'cv/train' must be a positive number"),
    ("name: x\ntraining: {max_steps: many}\nmixes:\n  - {name: a, data: {cv/train: 1}}\nevaluation: {sets: [cv/test]}\n",
     r"r.yaml:2: training.max_steps must be int"),
    ("name: x\nmixes:\n  - name: a\n    data: {cv/train: 1}\n    training: {shuffle_buffer: -5}\n",
     r"r.yaml:5: mixes\[0\].training.shuffle_buffer must be >= 0, got -5"),
    ("name: x\ntraining: {learning_rate: 0}\nmixes:\n  - {name: a, data: {cv/train: 1}}\n",
     r"r.yaml:2: training.learning_rate must be > 0"),
    ("name: x\nreference: b\nmixes:\n  - {name: a, data: {cv/train: 1}}\nevaluation: {sets: [cv/test]}\n",
     "reference 'b' is not one of the mixes"),
])
def test_schema_errors_name_the_key_before_any_file(tmp_path, env, text, message):
    import re
    p = sweaug(env, "ablate", _recipe(tmp_path, text), "--corpus", tmp_path / "nonexistent",
               "--out", tmp_path / "runs", check=False)
    assert p.returncode == 2 and re.search(message, p.stderr), p.stderr
    assert "Traceback" not in p.stderr


def test_missing_shard_set_and_dry_run(corpus, tmp_path, env):
    bad = TINY.replace("fleurs/train: 0.5", "rixvox/train: 0.5") % "recipes/augment/default.yaml"
    p = sweaug(env, "ablate", _recipe(tmp_path, bad), "--corpus", corpus, "--out",
               tmp_path / "runs", check=False)
    assert p.returncode == 2 and "no source 'rixvox'" in p.stderr
    ok = TINY % (ROOT / "recipes" / "augment" / "default.yaml")
    p = sweaug(env, "ablate", _recipe(tmp_path, ok), "--corpus", corpus, "--out",
               tmp_path / "runs", "--dry-run")
    assert "mix cv+fleurs+aug" in p.stdout and "cv/train" in p.stdout and "24 steps" in p.stdout
    assert "(first 6 evaluated)" in p.stdout
    assert not (tmp_path / "runs").exists()


def test_tiny_ablation_end_to_end(corpus, tmp_path, env):
    recipe = _recipe(tmp_path, TINY % (ROOT / "recipes" / "augment" / "default.yaml"))
    runs = tmp_path / "runs"
    p = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", runs)
    run = runs / "tiny"
    for mix in ("cv", "cv+fleurs+aug"):
        res = json.loads((run / mix / "results.json").read_text())
        losses = [loss for _, loss in res["train"]["losses"]]
        assert len(losses) >= 4 and losses[-1] < losses[0]  # it learns
        assert set(res["eval"]) == {"cv/test", "fleurs/test"}
        assert (run / mix / "tensorboard").is_dir() and (run / mix / "model").is_dir()
    aug = json.loads((run / "cv+fleurs+aug" / "results.json").read_text())
    assert aug["data"]["by_source"]["fleurs"]["samples"] > 0
    assert aug["data"]["on_the_fly_augmentation"].endswith("default.yaml")
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert {r["mix"] for r in rows} >= {"baseline", "cv", "cv+fleurs+aug"}
    md = (run / "report.md").read_text()
    assert "| Model | Eval Loss | Eval WER |" in md and "baseline" in md
    assert (run / "wer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "report:" in p.stdout
    again = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", runs)
    assert again.stdout.count("finished earlier, skipped") == 4
    lora = json.loads((run / "cv-lora" / "results.json").read_text())
    assert lora["train"]["steps"] == 6 and all(l == l for _, l in lora["train"]["losses"])


KILL_AFTER_SAVE = """
import os, signal, sys
import transformers
orig = transformers.Trainer._save_checkpoint
def save(self, *a, **k):
    orig(self, *a, **k)
    os.kill(os.getpid(), signal.SIGKILL)  # killed right after the first checkpoint
transformers.Trainer._save_checkpoint = save
from sweaug.cli import main
sys.exit(main())
"""


def test_killed_mix_resumes_from_its_checkpoint(corpus, tmp_path, env):
    import subprocess
    import sys

    recipe = _recipe(tmp_path, TINY % (ROOT / "recipes" / "augment" / "default.yaml"))
    runs = tmp_path / "runs"
    args = ["ablate", str(recipe), "--corpus", str(corpus), "--out", str(runs), "--mix", "cv"]
    p = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVE, *args], env=env,
                       capture_output=True, text=True)
    assert p.returncode == -9
    mix = runs / "tiny" / "cv"
    assert (mix / "checkpoints" / "checkpoint-12").is_dir() and not (mix / "results.json").exists()
    sweaug(env, *args)
    res = json.loads((mix / "results.json").read_text())
    assert res["train"]["resumed_from"] == "checkpoint-12" and res["train"]["steps"] == 24
