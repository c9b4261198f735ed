"""Issue #15, the GPU path checked on CPU: resume seeks the stream (and continues the
uninterrupted run exactly), a changed recipe never resumes an old checkpoint, too-long samples
are dropped and counted, the preflight stops before the first step with one message, LoRA
trains under both kinds of gradient checkpointing, SpecAugment is a recipe key, and what each
model ran with is recorded and hashed."""
from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, sweaug

AUGMENT = ROOT / "recipes" / "augment" / "default.yaml"
RESUME = """name: resume
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 11
baseline: false
training: {per_device_train_batch_size: 4, gradient_accumulation_steps: 1, learning_rate: LR,
           warmup_steps: 2, max_steps: 7, seconds: 5.0, logging_steps: 1, save_steps: 3,
           dataloader_num_workers: 2, shuffle_buffer: 16, torch_threads: 1}
evaluation: {sets: [cv/test], max_samples: 2, bootstrap: 50, max_new_tokens: 4}
mixes:
  - name: cv
    data: {cv/train: 1.0}
    augment: %s
""" % AUGMENT

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


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env):
    out = tmp_path_factory.mktemp("gp") / "corpus"
    sweaug(env, "build", "--sources", "cv", "--cv-dir", ROOT / "sweaug" / "sample" / "cv",
           "--out", out, "--no-progress", "--shard-samples", "7")
    return out


def _recipe(tmp_path: Path, lr: str = "0.002") -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(RESUME.replace("LR", lr))
    return p


def _losses(run: Path) -> dict[int, float]:
    res = json.loads((run / "resume" / "cv" / "results.json").read_text())
    return {int(s): v for s, v in res["train"]["losses"]}


def test_resume_seeks_and_continues_the_uninterrupted_run(corpus, tmp_path, env):
    """Killed after checkpoint-3 (3 batches from 2 DataLoader workers: the next batch is
    worker 1's), resumed: steps 4-7 have the losses of a run never interrupted — same
    samples, same augmentation draws, same order — and no sample was replayed. Then the
    learning rate changes: the old checkpoints are not resumed (the run says what differs),
    they are kept under their own hash, and the new settings train from step 0."""
    recipe = _recipe(tmp_path)
    full = tmp_path / "full"
    sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", full)
    want = _losses(full)
    assert sorted(want) == list(range(1, 8))

    runs = tmp_path / "runs"
    args = ["ablate", str(recipe), "--corpus", str(corpus), "--out", str(runs)]
    p = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVE, *args], env=env,
                       capture_output=True, text=True)
    assert p.returncode == -9, p.stderr[-2000:]
    mix = runs / "resume" / "cv"
    (ckpt,) = mix.glob("checkpoints/*/checkpoint-3")
    stream = json.loads((ckpt / "sweaug_stream-rank0.json").read_text())
    assert stream["batches"] == 3 and stream["workers"] == 2
    assert sum(s["position"] for s in stream["state"].values()) >= 12  # 3 batches of 4
    p = sweaug(env, *args)
    assert "resuming from" in p.stderr and "none replayed" in p.stderr
    res = json.loads((mix / "results.json").read_text())
    assert res["train"]["resumed_from"] == "checkpoint-3" and res["train"]["steps"] == 7
    got = _losses(runs)
    assert sorted(got) == [4, 5, 6, 7]
    for step, loss in got.items():
        assert loss == pytest.approx(want[step], rel=1e-5, abs=1e-6), (step, got, want)
    # only the samples of the 4 resumed steps were prepared (3 batches' worth were skipped)
    assert res["train"]["throughput"]["samples"] == 16
    assert res["train"]["throughput"]["steps"] == 4

    old_hash = ckpt.parent.name
    p = sweaug(env, "ablate", _recipe(tmp_path, "0.003"), "--corpus", corpus, "--out", runs)
    assert "are of other settings" in p.stdout  # the finished results
    assert f"checkpoints/{old_hash} are of other settings (training.learning_rate 0.002 -> " \
           f"0.003)" in p.stderr
    assert "resuming from" not in p.stderr
    res = json.loads((mix / "results.json").read_text())
    assert res["train"]["resumed_from"] is None and sorted(_losses(runs)) == list(range(1, 8))
    folders = sorted(d.name for d in (mix / "checkpoints").iterdir())
    assert len(folders) == 2 and old_hash in folders  # the old settings' checkpoints kept
    assert res["run_hash"] in folders
    # what it ran with, in results.json and the report (the seed's fp16 and 8-bit AdamW
    # became fp32 and torch's AdamW on this CPU: said, not silent)
    ran = res["train"]["ran_with"]
    assert (ran["device"], ran["precision"], ran["attention"]) == ("cpu", "fp32", "sdpa")
    assert ran["gradient_checkpointing"] is True and ran["optimizer"] == "adamw_torch"
    assert ran["fallbacks"][0] == "fp16 -> fp32 (no CUDA)" and len(ran["fallbacks"]) == 2
    assert res["evaluated_with"]["precision"] == "fp32"
    assert res["eval"]["cv/test"]["clips_per_second"] > 0
    assert res["train"]["dropped"]["window_seconds"] == 5.0
    md = (runs / "resume" / "report.md").read_text()
    assert "## How each model ran" in md
    assert "| cv | cpu, fp32, adamw_torch, sdpa attention, gradient checkpointing " \
           "(non-reentrant); instead of the recipe's: fp16 -> fp32 (no CUDA); " in md
    assert "Clips longer than the model's 5 s window" in md
    assert "all " in md and "samples augmented on the fly (default.yaml)" in md
    settings = json.loads((mix / "checkpoints" / res["run_hash"] / "settings.json").read_text())
    assert settings["training"]["learning_rate"] == 0.003
    assert settings["ran_with"]["precision"] == "fp32"


# ---------------------------------------------------------------- the stream


class _Tok:
    """Labels of a given length per key: ``<|startoftranscript|>`` + one id per character."""

    def __call__(self, text):
        return type("T", (), {"input_ids": [7] + [1] * len(text)})()

    def convert_tokens_to_ids(self, token):
        return 7


def _shards(corpus: Path) -> list[str]:
    return sorted(str(p) for p in (corpus / "cv").glob("train-*.tar"))


def _stream(corpus, **kw):
    from sweaug.train.mix import MixStream

    return MixStream([(_shards(corpus), 1.0)], _Tok(), lambda a: np.zeros((2, 2), np.float32) +
                     len(a), 5, rank=0, world_size=1, **kw)


def test_stream_drops_and_counts_samples_too_long(corpus, caplog):
    """Labels longer than max_label_tokens and audio longer than the window are dropped (not
    cut), counted per reason in every sample's ``stream`` tuple, the first 3 logged; a stream
    in which nothing fits raises instead of spinning forever."""
    # the unfiltered stream: labels are 1 + len(text), features hold the audio length
    n = 60
    plain = list(itertools.islice(iter(_stream(corpus)), n))
    label_len = [len(x["labels"]) - 1 for x in plain]
    audio_len = [int(x["input_features"][0, 0]) for x in plain]
    limit = sorted(label_len)[n // 2]
    window = sorted(audio_len)[n // 2]

    for kw, lengths, bound, field in [({"max_label_tokens": limit}, label_len, limit, 3),
                                      ({"max_audio_samples": window}, audio_len, window, 2)]:
        kept = list(itertools.islice(iter(_stream(corpus, **kw)), 20))
        last = kept[-1]["stream"]
        position, dropped = last[1], last[field]
        assert position - dropped == 20  # every item is either yielded or dropped
        assert dropped == sum(x > bound for x in lengths[:position]) > 0
        assert last[5 - field] == 0 and last[4] == 0  # the other reasons count nothing
        want = [i for i in range(position) if lengths[i] <= bound]
        assert [x["stream"][1] - 1 for x in kept] == want  # exactly the short ones, in order
    logged = [r.getMessage() for r in caplog.records if "dropped:" in r.getMessage()]
    assert sum("labels are longer" in m for m in logged) == 3
    assert sum("after augmentation is longer than the model's window" in m for m in logged) == 3
    with pytest.raises(ValueError, match="were all dropped"):
        next(iter(_stream(corpus, max_audio_samples=10)))


def test_a_failed_augmentation_draw_drops_the_sample_not_the_run(corpus, caplog):
    """An on-the-fly draw that clips (AugmentError) drops that sample for that pass, counted as
    augment_failed, like `sweaug augment` — it used to end the training run mid-way."""
    from sweaug.augment import AugmentError

    calls = []

    def augmenter(audio, sr, key, epoch):
        calls.append(key)
        if len(calls) % 3 == 0:
            raise AugmentError("augment_clipping", "0.15% of samples beyond full scale")
        return audio, []

    kept = list(itertools.islice(iter(_stream(corpus, augmenter=augmenter)), 20))
    last = kept[-1]["stream"]
    assert last[4] == len(calls) // 3 and last[1] - last[4] == 20
    assert any("augmentation failed (augment_clipping: 0.15%" in r.getMessage()
               for r in caplog.records)


def test_seek_equals_the_fresh_stream_and_reads_no_audio(corpus, monkeypatch):
    """The stream resumed at position q yields what the fresh stream yields after q items
    (shuffle buffer, several passes), and decodes no audio for the q skipped."""
    import sweaug.train.data as data

    fresh = list(itertools.islice(iter(_stream(corpus, shuffle_buffer=8)), 40))
    q = fresh[24]["stream"][1]
    calls = []
    real = data.decode_flac
    monkeypatch.setattr(data, "decode_flac", lambda b: calls.append(1) or real(b))
    resumed = list(itertools.islice(iter(_stream(corpus, shuffle_buffer=8,
                                                 start={0: {"position": q}})), 15))
    assert len(calls) == 15  # one decode per yielded sample, none for the skipped
    for a, b in zip(resumed, fresh[25:40]):
        assert a["labels"] == b["labels"] and a["stream"] == b["stream"]
        assert np.array_equal(a["input_features"], b["input_features"])


def test_resumed_workers_take_their_turns_where_they_stopped(corpus):
    """Two DataLoader workers: after 3 batches (the next is worker 1's), a stream resumed with
    the StreamProgress of those batches yields batches 4 and 5 of the uninterrupted loader."""
    import torch
    from torch.utils.data import DataLoader

    from sweaug.train.mix import SpeechCollator, StreamProgress

    def loader(ds):
        return DataLoader(ds, batch_size=3, num_workers=2, collate_fn=SpeechCollator(7))

    fresh = list(itertools.islice(loader(_stream(corpus, shuffle_buffer=4)), 5))
    progress = StreamProgress(0, 2, 2, 1)
    for b in fresh[:3]:
        progress.consume(b["sweaug"]["stream"])
    assert progress.batches == 3
    resumed = list(itertools.islice(loader(_stream(corpus, shuffle_buffer=4,
                                                   start=progress.state,
                                                   worker_offset=progress.batches % 2)), 2))
    for a, b in zip(resumed, fresh[3:]):
        assert a["sweaug"]["stream"] == b["sweaug"]["stream"]
        assert torch.equal(a["labels"], b["labels"])
    # without the offset, worker 0 would go first: another order (the test can fail)
    wrong = next(iter(loader(_stream(corpus, shuffle_buffer=4, start=progress.state))))
    assert wrong["sweaug"]["stream"] != fresh[3]["sweaug"]["stream"]


# ---------------------------------------------------------------- the preflight


T4 = {"cuda": True, "name": "cuda:0 (Tesla T4)", "capability": (7, 5)}
SEED = """name: seedlike
model: tiny-random
tiny: {d_model: 768, layers: 12, heads: 12, max_target_positions: 448}
mixes:
  - name: tutorial
    data: {cv/train: 1.0}
  - name: bf16
    data: {cv/train: 1.0}
    training: {fp16: false, bf16: true, optim: adamw_torch}
evaluation: {sets: [cv/test]}
"""


def _seed_recipe(tmp_path):
    from sweaug.ablate.recipe import load

    p = tmp_path / "seed.yaml"
    p.write_text(SEED)
    return load(p, tmp_path / "corpus")


def test_preflight_collects_every_problem_into_one_message(tmp_path, monkeypatch):
    """A Colab T4 without bitsandbytes: the seed's 8-bit AdamW and a bf16 mix are both named,
    with the fix, before anything runs; so is too little disk for the checkpoints."""
    from sweaug.ablate import run as ablate
    from sweaug.ablate.recipe import AblationError
    from sweaug.train import device as dev

    recipe = _seed_recipe(tmp_path)
    monkeypatch.setattr(dev, "_machine", lambda: T4)
    monkeypatch.setattr(dev, "bitsandbytes_problem",
                        lambda: "ModuleNotFoundError: No module named 'bitsandbytes'")
    monkeypatch.setattr(dev, "free_bytes", lambda folder: 2 << 30)
    run_dir = tmp_path / "runs" / "seedlike"
    with pytest.raises(AblationError) as e:
        ablate.plan_models(recipe, [None, *recipe.mixes], run_dir)
    msg = str(e.value)
    assert msg.startswith("this machine cannot run the recipe as it stands (nothing was "
                          "trained or evaluated)")
    assert "mix tutorial: optim adamw_bnb_8bit needs bitsandbytes" in msg and ".[gpu]" in msg
    assert "mix bf16: bf16 needs a GPU of compute capability 8.0" in msg and "7.5" in msg
    assert "need about" in msg and "has 2.0 GiB free" in msg
    assert msg.count("\n  - ") == 3

    # with bitsandbytes and room: the T4 plan runs the seed's settings as written
    monkeypatch.setattr(dev, "bitsandbytes_problem", lambda: None)
    monkeypatch.setattr(dev, "free_bytes", lambda folder: 1 << 50)
    plans = ablate.plan_models(recipe, [None, recipe.mixes[0]], run_dir)
    t = plans["tutorial"]["train"]
    assert (t["device"], t["precision"], t["optimizer"], t["fallbacks"]) == \
        ("cuda", "fp16", "adamw_bnb_8bit", [])
    assert t["gradient_checkpointing"] is True and t["checkpointing_reentrant"] is False
    assert plans["tutorial"]["eval"]["precision"] == "fp16"  # evaluated as it was trained
    assert plans["baseline"]["eval"]["precision"] == "fp16"
    gpu_hash = plans["tutorial"]["run_hash"]

    # the same recipe on this CPU: fp32 and torch AdamW, recorded as fallbacks, another hash
    monkeypatch.setattr(dev, "_machine", lambda: {"cuda": False, "name": "cpu",
                                                  "capability": None})
    cpu = ablate.plan_models(recipe, [recipe.mixes[0]], run_dir)["tutorial"]
    assert cpu["train"]["precision"] == "fp32" and cpu["train"]["optimizer"] == "adamw_torch"
    assert cpu["train"]["fallbacks"] == [
        "fp16 -> fp32 (no CUDA)",
        "adamw_bnb_8bit -> adamw_torch (bitsandbytes' 8-bit optimizers need CUDA)"]
    assert cpu["train"]["gradient_checkpointing"] is True  # honoured on CPU too
    assert cpu["run_hash"] != gpu_hash  # a CPU run never counts as done for a GPU rerun
    with pytest.raises(AblationError, match="--device cuda, but torch sees no CUDA device"):
        ablate.plan_models(recipe, [recipe.mixes[0]], run_dir, device="cuda")


def test_device_cuda_without_cuda_stops_before_anything(corpus, tmp_path, env):
    p = sweaug(env, "ablate", _recipe(tmp_path), "--corpus", corpus, "--out", tmp_path / "runs",
               "--device", "cuda", check=False)
    assert p.returncode == 2, p.stdout + p.stderr
    assert "--device cuda, but torch sees no CUDA device" in p.stderr
    assert "nothing was trained or evaluated" in p.stderr and "Traceback" not in p.stderr
    assert not list((tmp_path / "runs").rglob("results.json"))
    assert not list((tmp_path / "runs").rglob("checkpoint-*"))


def test_dry_run_says_what_this_machine_runs(corpus, tmp_path, env):
    p = sweaug(env, "ablate", _recipe(tmp_path), "--corpus", corpus, "--out", tmp_path / "runs",
               "--dry-run")
    assert "on this machine:" in p.stdout and "fp32" in p.stdout
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- LoRA and checkpointing


@pytest.mark.parametrize("reentrant", [False, True])
def test_lora_with_gradient_checkpointing_trains_encoder_and_decoder(reentrant):
    """With the inputs made to require grad (finetune._lora_inputs_require_grad), LoRA's
    adapters get gradients in the encoder and the decoder under either checkpointing; without
    it, reentrant checkpointing cuts every adapter off the graph (so the test can fail)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from sweaug.train.finetune import (_lora_inputs_require_grad, enable_checkpointing,
                                       load_whisper)

    def grads(hook: bool) -> dict[str, float]:
        model, _, _ = load_whisper("tiny-random", 1.0, {"d_model": 64, "layers": 2, "heads": 2},
                                   0, "sv", "transcribe", dropout=0.0, attention="sdpa")
        if hook:
            _lora_inputs_require_grad(model)
        model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8,
                                                 target_modules=["q_proj", "v_proj"]))
        model.config.use_cache = False
        enable_checkpointing(model, reentrant)
        model.train()
        x = torch.randn(2, 80, 100)
        labels = torch.randint(0, 1000, (2, 6))
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch: "none of the inputs have requires_grad"
            model(input_features=x, labels=labels).loss.backward()
        out = {"encoder": 0.0, "decoder": 0.0}
        for name, p in model.named_parameters():
            if "lora_B" in name and p.grad is not None:
                out["encoder" if ".encoder." in name else "decoder"] += float(p.grad.abs().sum())
        return out

    g = grads(hook=True)
    assert g["encoder"] > 0 and g["decoder"] > 0, g
    if reentrant:  # without it: no adapter is reached, the loss has no gradient at all
        with pytest.raises(RuntimeError, match="does not require grad"):
            grads(hook=False)


# ---------------------------------------------------------------- SpecAugment


def test_spec_augment_is_a_recipe_key(tmp_path):
    import torch

    from sweaug.ablate.recipe import AblationError, load
    from sweaug.train.finetune import apply_spec_augment, load_whisper

    p = tmp_path / "s.yaml"
    base = ("name: s\nevaluation: {sets: [cv/test]}\nmixes:\n  - name: a\n"
            "    data: {cv/train: 1}\n    training: {%s}\n")
    p.write_text(base % "mask_time_prob: 1.5")
    with pytest.raises(AblationError, match=r"s.yaml:6: mixes\[0\].training.mask_time_prob "
                                            r"must be <= 1, got 1.5"):
        load(p)
    p.write_text(base % "mask_time_length: 0")
    with pytest.raises(AblationError, match="mask_time_length must be > 0"):
        load(p)
    p.write_text(base % "apply_spec_augment: yes please")
    with pytest.raises(AblationError, match="apply_spec_augment must be bool"):
        load(p)
    p.write_text(base % "apply_spec_augment: true, mask_time_prob: 0.5, mask_time_length: 5, "
                        "mask_feature_prob: 0.3, mask_feature_length: 4")
    t = load(p).mixes[0].training
    model, _, _ = load_whisper("tiny-random", 1.0, {"d_model": 64, "layers": 1, "heads": 2}, 0,
                               "sv", "transcribe")
    spec = apply_spec_augment(model, t)
    assert spec["mask_time_prob"] == 0.5 and spec["mask_feature_length"] == 4
    x = torch.randn(1, 80, 100) + 5.0
    whisper = model.model  # WhisperModel masks its input features in training forwards
    assert whisper.config is model.config
    model.train()
    masked = whisper._mask_input_features(x.clone())
    assert (masked == 0).float().mean() > 0.2  # time steps and mel bins zeroed
    model.eval()
    assert torch.equal(whisper._mask_input_features(x.clone()), x)  # never in evaluation
    assert apply_spec_augment(model, {"apply_spec_augment": False}) is None


# ---------------------------------------------------------------- evaluation settings


def test_eval_settings_honour_the_recipe(tmp_path):
    from sweaug.train.evaluate import eval_settings
    from sweaug.ablate.recipe import load

    model = type("M", (), {"config": type("C", (), {"max_target_positions": 448})()})()
    p = tmp_path / "e.yaml"
    p.write_text("name: e\nevaluation: {sets: [cv/test]}\n"
                 "training: {per_device_eval_batch_size: 24, generation_max_length: 100}"
                 "\nmixes:\n  - {name: a, data: {cv/train: 1}}\n"
                 "  - {name: b, data: {cv/train: 1}, training: {generation_max_length: 1000}}\n")
    r = load(p)
    assert eval_settings(r, r.mixes[0], model) == {"batch_size": 24, "max_new_tokens": 96}
    assert eval_settings(r, r.mixes[1], model)["max_new_tokens"] == 444  # clamped to 448 - 4
    assert eval_settings(r, None, model)["batch_size"] == 24  # the baseline: the first mix's
    old_hash = r.mix_hash(r.mixes[0])
    p.write_text(p.read_text().replace("evaluation: {sets: [cv/test]}",
                                       "evaluation: {sets: [cv/test], batch_size: 3, "
                                       "max_new_tokens: 20}"))
    r = load(p)
    assert eval_settings(r, r.mixes[0], model) == {"batch_size": 3, "max_new_tokens": 20}
    assert r.mix_hash(r.mixes[0]) != old_hash  # other evaluation settings: another result
