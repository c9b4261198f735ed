"""Epochs, evaluation during training, the best checkpoint and early stopping (issue #19,
point 8): ``num_train_epochs`` becomes ``ceil(epochs x samples / samples per step)`` steps (the
stream is endless), printed by --dry-run and recorded in results.json; ``eval_steps`` evaluates
during training, ``load_best_model_at_end`` makes the best checkpoint the model that is saved
and evaluated, ``early_stopping_patience`` ends training early; the keys are checked."""
from __future__ import annotations

import json
import math
import re

import pytest

from conftest import sweaug

HEAD = """name: epochs
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 3
baseline: false
evaluation: {sets: [cv/test], max_samples: 4, bootstrap: 50}
"""
RUN = HEAD + """training: {per_device_train_batch_size: 8, gradient_accumulation_steps: 1,
           learning_rate: 0.002, warmup_steps: 2, seconds: 5.0, logging_steps: 2,
           save_steps: 2, dataloader_num_workers: 0, eval_steps: 2,
           eval_during_training_max_samples: 4}
mixes:
  - name: best
    data: {cv/train: 1.0}
    training: {num_train_epochs: 1.5, metric_for_best_model: wer, load_best_model_at_end: true}
  - name: stop
    data: {cv/train: 1.0}
    training: {max_steps: 40, learning_rate: 0.05, early_stopping_patience: 1,
               load_best_model_at_end: true}
"""


@pytest.fixture
def corpus(sample_corpus):
    return sample_corpus


def _samples(corpus, *sets) -> int:
    top = json.loads((corpus / "manifest.json").read_text())
    return sum(top["sources"][s.split("/")[0]]["splits"][s.split("/")[1]]["samples"] for s in sets)


def _recipe(tmp_path, text):
    p = tmp_path / "r.yaml"
    p.write_text(text)
    return p


def test_epochs_in_the_dry_run_plan(corpus, tmp_path, env):
    text = HEAD + """training: {per_device_train_batch_size: 4, gradient_accumulation_steps: 2,
           num_train_epochs: 2.5}
mixes:
  - name: cv
    data: {cv/train: 1.0}
  - name: both
    data: {cv/train: 1.0, fleurs/train: 0.5}
    training: {num_train_epochs: 1}
  - name: steps
    data: {cv/train: 1.0}
    training: {max_steps: 5}
"""
    p = sweaug(env, "ablate", _recipe(tmp_path, text), "--corpus", corpus, "--out",
               tmp_path / "runs", "--dry-run")
    cv, both = _samples(corpus, "cv/train"), _samples(corpus, "cv/train", "fleurs/train")
    assert f"mix cv: {math.ceil(2.5 * cv / 8)} steps (2.5 epochs of {cv} samples, 8 per step)" \
        in p.stdout, p.stdout
    assert f"mix both: {math.ceil(both / 8)} steps (1 epochs of {both} samples, 8 per step)" \
        in p.stdout
    assert "mix steps: 5 steps x 8 samples" in p.stdout  # the mix's max_steps wins
    assert not (tmp_path / "runs").exists()


def test_best_checkpoint_and_early_stopping(corpus, tmp_path, env):
    from safetensors.torch import load_file

    runs = tmp_path / "runs"
    p = sweaug(env, "ablate", _recipe(tmp_path, RUN), "--corpus", corpus, "--out", runs)
    steps = math.ceil(1.5 * _samples(corpus, "cv/train") / 8)
    assert f"mix best: {steps} steps (1.5 epochs of" in p.stdout
    assert re.search(r"^\[train\] best: eval at step 2  loss \d+\.\d{3}  wer [\d.]+ %  "
                     r"\(4 samples\)  \(best so far\)$", p.stdout, re.M), p.stdout
    assert "missing keys" not in p.stderr  # the tied head of the best checkpoint: file only

    best = json.loads((runs / "epochs" / "best" / "results.json").read_text())["train"]
    assert best["steps"] == best["max_steps"] == steps
    assert best["epochs"] == {"num_train_epochs": 1.5, "samples": _samples(corpus, "cv/train"),
                              "samples_per_step": 8, "max_steps": steps}
    evals = best["evaluations"]
    assert [e["step"] for e in evals] == list(range(2, steps + 1, 2))
    wers = [e["wer"] for e in evals]
    b = best["best"]
    assert b["metric"] == "wer" and b["set"] == "cv/test" and b["loaded"]
    assert b["value"] == min(wers) and b["step"] == evals[wers.index(min(wers))]["step"]
    assert b["checkpoint"] == f"checkpoint-{b['step']}" and not b["stopped_early"]
    folder = runs / "epochs" / "best"
    (ckpt,) = folder.glob(f"checkpoints/*/checkpoint-{b['step']}")  # kept, as the best
    saved, kept = load_file(folder / "model" / "model.safetensors"), \
        load_file(ckpt / "model.safetensors")
    assert all((saved[k] == kept[k]).all() for k in kept)  # the model is the best checkpoint

    stop = json.loads((runs / "epochs" / "stop" / "results.json").read_text())["train"]
    s = stop["best"]
    assert s["metric"] == "loss" and s["stopped_early"] and stop["steps"] < 40
    losses = [e["loss"] for e in stop["evaluations"]]
    assert stop["evaluations"][-1]["step"] == stop["steps"]
    assert losses[-1] >= min(losses[:-1]) and s["value"] == min(losses)  # patience 1
    assert "wer" not in stop["evaluations"][0]  # loss only: one generated token per batch
    assert re.search(r"^\[train\] stop: done, step \d+/40 .*\(early stopping\)$", p.stdout, re.M)

    md = (runs / "epochs" / "report.md").read_text()
    assert "best: evaluated during training, best eval wer" in md
    assert "that checkpoint was loaded at the end of training" in md
    assert f"early stopping ended training at step {stop['steps']} of 40" in md


@pytest.mark.parametrize("training,message", [
    ("{num_train_epochs: 2, max_steps: 10}",
     r"r.yaml:3: training.num_train_epochs and training.max_steps \(line 3\) are exclusive"),
    ("{num_train_epochs: 0}", r"r.yaml:3: training.num_train_epochs must be > 0, got 0"),
    ("{num_train_epochs: .inf}", r"r.yaml:3: training.num_train_epochs must be a finite number"),
    ("{eval_steps: 0}", r"r.yaml:3: training.eval_steps must be > 0, got 0"),
    ("{eval_steps: 10, metric_for_best_model: bleu}",
     r"r.yaml:3: training.metric_for_best_model must be one of loss, wer, got 'bleu'"),
    ("{load_best_model_at_end: true}",
     r"r.yaml:3: training.load_best_model_at_end needs training.eval_steps"),
    ("{eval_steps: 300, save_steps: 1000, load_best_model_at_end: true}",
     r"r.yaml:3: training.load_best_model_at_end .* save_steps \(1000\) must be a multiple of "
     r"eval_steps \(300\)"),
    ("{eval_steps: 10, eval_during_training: cvtest}",
     r"r.yaml:3: training.eval_during_training must be a shard set"),
    ("{eval_steps: 10, early_stopping_patience: 0}",
     r"r.yaml:3: training.early_stopping_patience must be > 0"),
    ("{eval_steps: 10, load_best_model_at_end: 1}",
     r"r.yaml:3: training.load_best_model_at_end must be bool"),
])
def test_invalid_keys(tmp_path, env, training, message):
    text = (f"name: x\nevaluation: {{sets: [cv/test]}}\ntraining: {training}\n"
            f"mixes:\n  - {{name: a, data: {{cv/train: 1}}}}\n")
    p = sweaug(env, "ablate", _recipe(tmp_path, text), "--corpus", tmp_path / "none", "--out",
               tmp_path / "runs", check=False)
    assert p.returncode == 2 and re.search(message, p.stderr), p.stderr
    assert "Traceback" not in p.stderr


def test_mix_level_key_needs_eval_steps_and_names_its_line(tmp_path, env):
    text = ("name: x\nevaluation: {sets: [cv/test]}\nmixes:\n  - name: a\n"
            "    data: {cv/train: 1}\n    training: {early_stopping_patience: 2}\n")
    p = sweaug(env, "ablate", _recipe(tmp_path, text), "--corpus", tmp_path / "none", "--out",
               tmp_path / "runs", check=False)
    assert p.returncode == 2 and re.search(
        r"r.yaml:6: mixes\[0\].training.early_stopping_patience needs training.eval_steps",
        p.stderr), p.stderr


def test_precedence_defaults_and_hash(tmp_path):
    from sweaug.ablate.recipe import TRAINING_DEFAULTS, ShardSet, load, resolve_steps

    text = HEAD + """training: {num_train_epochs: 3, per_device_train_batch_size: 4}
mixes:
  - name: epochs
    data: {cv/train: 1.0}
  - name: steps
    data: {cv/train: 1.0}
    training: {max_steps: 7}
  - name: eval
    data: {cv/train: 1.0}
    training: {num_train_epochs: null, max_steps: 9, eval_steps: 3}
"""
    r = load(_recipe(tmp_path, text))
    sets = {"cv/train": ShardSet("cv/train", [], 10, 0.1, False, "cv")}
    resolve_steps(r, sets, world=2)  # a step: 4 x 2 (gradient accumulation) x 2 processes
    epochs, steps, ev = r.mixes
    assert epochs.training["max_steps"] == math.ceil(3 * 10 / 16) and epochs.epochs == {
        "num_train_epochs": 3, "samples": 10, "samples_per_step": 16, "max_steps": 2}
    assert steps.training["max_steps"] == 7 and "num_train_epochs" not in steps.training
    assert steps.epochs is None
    assert ev.training["eval_during_training"] == "cv/test"  # the first evaluation set
    assert ev.training["eval_during_training_max_samples"] == 200
    assert ev.training["metric_for_best_model"] == "loss"
    assert ev.training["load_best_model_at_end"] is False
    assert "early_stopping_patience" not in ev.training
    # a recipe that sets none of the new keys has the settings (and so the hash) it had
    plain = load(_recipe(tmp_path, HEAD + "training: {max_steps: 5}\n"
                                          "mixes:\n  - {name: a, data: {cv/train: 1}}\n"))
    assert plain.mixes[0].training == {**TRAINING_DEFAULTS, "max_steps": 5}
    before = plain.mix_hash(plain.mixes[0])
    resolve_steps(plain, sets)
    assert plain.mix_hash(plain.mixes[0]) == before and plain.mixes[0].epochs is None
