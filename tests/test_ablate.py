"""`sweaug ablate`: recipe schema checked before any file, dry-run plan, and a real (tiny)
fine-tune per mix with report, CSV and plot; finished mixes are skipped on re-run."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
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


@pytest.fixture
def corpus(sample_corpus):
    return sample_corpus


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
    ("name: x\ntraining: {vocabulary: tokens}\nmixes:\n  - {name: a, data: {cv/train: 1}}\n",
     r"r.yaml:2: training.vocabulary must be one of full, transcripts, got 'tokens'"),
    ("name: x\nmixes:\n  - name: a\n    data: {cv/train: 1}\n    training: {torch_threads: 0}\n",
     r"r.yaml:5: mixes\[0\].training.torch_threads must be > 0, got 0"),
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
    assert len(list((mix / "checkpoints").glob("*/checkpoint-12"))) == 1
    assert not (mix / "results.json").exists()
    sweaug(env, *args)
    res = json.loads((mix / "results.json").read_text())
    assert res["train"]["resumed_from"] == "checkpoint-12" and res["train"]["steps"] == 24


TRANSCRIPTS = """name: vocab
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 5
baseline: false
training: {per_device_train_batch_size: 8, gradient_accumulation_steps: 1, learning_rate: 0.002,
           warmup_steps: 2, max_steps: 16, seconds: 5.0, logging_steps: 4, save_steps: 16,
           dataloader_num_workers: 0, vocabulary: transcripts, torch_threads: 1}
evaluation: {sets: [cv/test, fleurs/test], max_samples: 6, bootstrap: 100, max_new_tokens: 12}
mixes:
  - name: cv
    data: {cv/train: 1.0}
  - name: cv-lora
    data: {cv/train: 1.0}
    lora: {r: 4, alpha: 8, target_modules: [q_proj, v_proj]}
    training: {max_steps: 4, save_steps: 4}
"""


def test_transcripts_vocabulary(corpus, tmp_path, env):
    """``vocabulary: transcripts``: the saved model suppresses exactly the tokens that no
    training label uses, never generates one, and its evaluation loss is a softmax over the
    kept tokens, with reference tokens it cannot emit counted, not infinite."""
    import math

    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration

    from sweaug.train.evaluate import label_ids, shard_samples
    from sweaug.train.features import LogMel
    from sweaug.train.vocab import KeptLogits
    from sweaug.train.whisper import load_tokenizer

    runs = tmp_path / "runs"
    sweaug(env, "ablate", _recipe(tmp_path, TRANSCRIPTS), "--corpus", corpus, "--out", runs)
    folder = runs / "vocab" / "cv" / "model"
    model = WhisperForConditionalGeneration.from_pretrained(str(folder)).eval()
    tok = load_tokenizer(str(folder))
    train = [s["text"] for s in shard_samples(sorted((corpus / "cv").glob("train-*.tar")))]
    kept = {t for text in train for t in label_ids(tok, text)}
    vocab = model.config.vocab_size
    suppressed = set(model.generation_config.suppress_tokens)
    assert suppressed == set(range(vocab)) - kept and 0 < len(kept) < 1000
    res = json.loads((runs / "vocab" / "cv" / "results.json").read_text())
    losses = [loss for _, loss in res["train"]["losses"]]
    assert losses[-1] < losses[0] < math.log(len(kept)) + 1  # a softmax over ~len(kept) tokens
    assert res["train"]["kept_tokens"] == len(kept)
    assert f"cv, cv-lora: trained with `vocabulary: transcripts`, so their eval loss is a " \
           f"softmax over the {len(kept)} tokens" in (runs / "vocab" / "report.md").read_text()
    for name in ("cv/test", "fleurs/test"):
        ev = res["eval"][name]
        refs = [label_ids(tok, r)[1:] for r in ev["refs"]]  # the predicted positions
        assert ev["unreachable_tokens"] == sum(t in suppressed for r in refs for t in r)
        assert math.isfinite(ev["eval_loss"])
    assert res["eval"]["fleurs/test"]["unreachable_tokens"] > 0  # other sentences, other words
    test = list(shard_samples(sorted((corpus / "fleurs").glob("test-*.tar"))))[:4]
    mel = LogMel(WhisperFeatureExtractor.from_pretrained(str(folder)))
    x = torch.from_numpy(np.stack([mel(s["audio"]) for s in test]))
    ids = model.generate(x, language="sv", task="transcribe", max_new_tokens=12)
    assert not set(ids.flatten().tolist()) & suppressed
    # the training head: the same weight, the kept columns of the full logits
    h = torch.randn(2, 3, model.config.d_model)
    order = sorted(kept)
    assert torch.allclose(KeptLogits(model.proj_out, order)(h), model.proj_out(h)[..., order],
                          atol=1e-5)
    lora = json.loads((runs / "vocab" / "cv-lora" / "results.json").read_text())
    assert lora["train"]["steps"] == 4
    lora_cfg = json.loads((runs / "vocab" / "cv-lora" / "model" / "generation_config.json")
                          .read_text())
    assert set(lora_cfg["suppress_tokens"]) == suppressed


def test_torch_threads_is_restored():
    import torch

    from sweaug.ablate.run import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before


@pytest.mark.parametrize("pretrained", [False, True])
def test_recipe_dropout_reaches_the_layers(tmp_path, pretrained):
    """``training.dropout`` is in the config the model is built from: Whisper's layers copy
    ``config.dropout`` when made, so setting it on a built model would change nothing."""
    import torch

    from sweaug.train.finetune import load_whisper
    from sweaug.train.whisper import tiny_whisper

    tiny = {"d_model": 64, "layers": 1, "heads": 2}
    name = "tiny-random"
    if pretrained:  # a saved model folder: the from_pretrained path of openai/whisper-small
        name = str(tmp_path / "m")
        for part in tiny_whisper(seconds=1.0, seed=0, **tiny):
            part.save_pretrained(name)
    model, _, _ = load_whisper(name, 1.0, tiny, 0, "sv", "transcribe", dropout=0.25)
    layers = [model.model.encoder, model.model.decoder, *model.model.encoder.layers,
              *model.model.decoder.layers]
    assert all(m.dropout == 0.25 for m in layers)
    model.train()
    x = torch.randn(1, 80, 100)
    dec = torch.tensor([[model.config.decoder_start_token_id] * 3])
    a, b = (model(input_features=x, decoder_input_ids=dec).logits for _ in range(2))
    assert not torch.equal(a, b)  # dropout is live in training mode
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(input_features=x, decoder_input_ids=dec).logits,
                           model(input_features=x, decoder_input_ids=dec).logits)
