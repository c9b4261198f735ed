"""benchmarks/gpu_check.py in its smallest CPU form (whisper-small's architecture, 2 steps of
batch 2, 2 clips evaluated, 4 generated tokens, the batch probe capped at 2), as a subprocess:
the JSON it prints last and writes has every key, finite losses and CPU values. Takes 2-3
minutes on 2 CPU cores (~6 GB RSS)."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

from conftest import ROOT

KEYS = {
    "format", "ok", "device", "device_type", "dtype", "precision", "optimizer", "optimizer_note",
    "attention", "gradient_checkpointing", "fallbacks", "per_device_batch", "grad_accumulation",
    "effective_batch", "processes", "steps", "training_seconds", "s_per_step",
    "s_per_step_steady", "samples", "samples_per_s", "label_tokens", "tokens_per_s",
    "loader_wait_seconds", "first_batch_seconds", "loader_wait_fraction",
    "loader_wait_fraction_after_first_batch", "loss_first", "loss_last", "losses",
    "train_loss", "eval_clips", "eval_seconds", "eval_clips_per_s", "eval_max_new_tokens",
    "eval_wer", "projected_4000_steps_seconds", "projected_4000_steps_hours",
    "projection_basis", "projection_scaled_by", "projection_note", "run_recipe_wall_seconds",
    "missing_keys", "model", "parameters", "peak_gpu_memory_bytes", "peak_gpu_memory_gib",
    "peak_rss_bytes", "peak_rss_gib", "peak_rss_children_gib", "notes", "build_seconds",
    "torch", "transformers", "bitsandbytes", "cuda", "corpus", "recipe", "results", "probe",
}


def test_gpu_check_cpu_form(tmp_path, env):
    out = tmp_path / "check"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
           "--out", str(out), "--steps", "2", "--eval-clips", "2",
           "--generation-max-length", "8", "--probe", "--probe-max", "2"]
    try:
        r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        lines = r.stdout.splitlines()
        start = len(lines) - 1 - lines[::-1].index("{")  # the JSON is printed last
        printed = json.loads("\n".join(lines[start:]))
        j = json.loads((out / "gpu_check.json").read_text())
        assert printed == j
        assert KEYS <= set(j), KEYS - set(j)
        assert j["ok"] is True and j["format"] == "sweaug-gpu-check/1"
        assert j["device"] == "cpu" and j["device_type"] == "cpu"
        assert j["dtype"] == "float32" and j["precision"] == "fp32"
        assert j["optimizer"] == "adamw_torch" and j["gradient_checkpointing"] is True
        assert j["parameters"] == 241_734_912  # whisper-small's architecture
        assert (j["per_device_batch"], j["grad_accumulation"], j["steps"]) == (2, 1, 2)
        assert [s for s, _ in j["losses"]] == [1, 2]  # logging_steps: 1
        assert all(math.isfinite(v) for _, v in j["losses"])
        assert math.isfinite(j["loss_first"]) and math.isfinite(j["loss_last"])
        assert j["loss_first"] == j["losses"][0][1] and j["loss_last"] == j["losses"][-1][1]
        assert j["s_per_step"] > 0 and j["s_per_step_steady"] > 0
        assert j["samples"] == 4 and j["samples_per_s"] > 0
        assert j["label_tokens"] > 0 and j["tokens_per_s"] > 0
        assert 0 <= j["loader_wait_fraction"] < 1
        assert j["eval_clips"] == 2 and j["eval_clips_per_s"] > 0
        assert j["label"] is None  # off on a CPU (test_gpu_check_label_step runs it)
        assert j["eval_max_new_tokens"] == 4
        assert j["peak_gpu_memory_bytes"] is None and j["peak_gpu_memory_gib"] is None
        assert j["peak_rss_bytes"] > 1 << 30  # 241.7 M fp32 parameters with AdamW state
        assert j["projection_scaled_by"] == 16.0  # 32 / (2 x 1)
        assert math.isclose(j["projected_4000_steps_seconds"],
                            j[j["projection_basis"]] * 4000 * 16, rel_tol=1e-3)
        p = j["probe"]
        assert p["largest_batch"] == 2 and p["tries"][0]["fits"] is True
        assert p["recommended"] == {"per_device_train_batch_size": 2,
                                    "gradient_accumulation_steps": 16}
        assert "gradient_accumulation_steps: 16" in p["advice"]
        # the recipe it ran is an ordinary sweaug ablate recipe of the seed's settings
        from sweaug.ablate.recipe import load
        rec = load(out / "gpu-check.yaml")
        t = rec.mixes[0].training
        assert rec.model == "tiny-random" and rec.tiny["d_model"] == 768
        assert t["learning_rate"] == 1e-5 and t["dropout"] == 0.1
        assert t["dataloader_num_workers"] == 2 and t["gradient_checkpointing"] is True
        assert rec.mixes[0].augment.endswith("augment/default.yaml")
        assert rec.eval_sets == ["cv/test"] and rec.eval_max_samples == 2
        assert rec.baseline is False
    finally:  # the saved 1 GB model
        shutil.rmtree(out / "runs", ignore_errors=True)


def _gpu_check():
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_gpu_check_summary_and_failures(tmp_path):
    """Without training: the summary of a results.json (a batch other than 32 scales the
    projection; clips_per_second absent -> n / seconds, said), a missing train.throughput fails
    loudly, and a non-finite loss fails the check."""
    import pytest

    g = _gpu_check()
    s = {"batch": 8, "grad_accum": 2, "optimizer_note": "x"}
    res = {"train": {"ran_with": {"device": "cpu", "device_name": "cpu", "precision": "fp32",
                                  "optimizer": "adamw_torch", "attention": "sdpa",
                                  "gradient_checkpointing": True, "fallbacks": []},
                     "throughput": {"seconds": 10.0, "steps": 5, "samples": 80,
                                    "label_tokens": 2000, "loader_wait_seconds": 1.0,
                                    "first_batch_seconds": 0.5},
                     "losses": [[1, 11.0], [5, 10.5]], "steps": 5, "train_loss": 10.7},
           "eval": {"cv/test": {"n": 4, "seconds": 2.0, "max_new_tokens": 12, "wer": 1.0}}}
    j = g.summarize(res, s, 20.0, tmp_path / "no-tensorboard")
    assert j["s_per_step"] == 2.0 and j["s_per_step_steady"] is None
    assert j["samples_per_s"] == 8.0 and j["tokens_per_s"] == 200.0
    assert j["loader_wait_fraction"] == 0.1
    assert j["projection_scaled_by"] == 2.0 and j["projected_4000_steps_seconds"] == 16000.0
    assert j["eval_clips_per_s"] == 2.0 and j["missing_keys"]
    assert (j["loss_first"], j["loss_last"]) == (11.0, 10.5)
    res["eval"]["cv/test"]["clips_per_second"] = 3.0
    assert g.summarize(res, s, 20.0, tmp_path)["eval_clips_per_s"] == 3.0
    del res["train"]["throughput"]
    with pytest.raises(g.CheckError, match="throughput"):
        g.summarize(res, s, 20.0, tmp_path)
    assert g.loss_problem([[1, 11.0], [2, 10.0]]) is None
    assert "not finite" in g.loss_problem([[1, 11.0], [2, float("nan")]])
    assert g.loss_problem([])


def test_gpu_check_label_step(tmp_path, sample_cv):
    """The check's `sweaug label` step (on by default on CUDA) on a CPU with a small model
    folder as teacher: every cv/test clip transcribed, the counts and dtype reported."""
    import argparse

    from sweaug.train.whisper import tiny_whisper

    g = _gpu_check()
    teacher = tmp_path / "teacher"
    for part in tiny_whisper(seconds=6.0, seed=0, d_model=64, layers=1, heads=2):
        part.save_pretrained(str(teacher))
    lab = g.label_check(argparse.Namespace(model=str(teacher), device="cpu"), sample_cv,
                        tmp_path, print)
    assert (lab["device"], lab["dtype"], lab["clips"]) == ("cpu", "float32", 8)
    assert lab["kept"] == 8 and lab["drops"] == {}
    assert lab["clips_per_s"] > 0 and lab["peak_gpu_memory_gib"] is None
