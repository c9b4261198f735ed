"""A pretrained Whisper from a folder or the Hugging Face cache, offline (issue #19 point 1):
``model: ./folder`` (save_pretrained files) and ``model: owner/name`` from a complete HF cache
with HF_HUB_OFFLINE=1 train and evaluate through the same code as a download; a model that is
not here fails ``--dry-run`` and the preflight at once, in one line that says what is missing
and the command that gets it (no minutes of Hub retries, no traceback)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FIX

CV12 = FIX / "cv" / "cv-corpus-12.0-2022-12-07"
RECIPE = """name: pre
model: {model}
seed: 3
training: {{per_device_train_batch_size: 2, gradient_accumulation_steps: 1, learning_rate: 0.001,
           warmup_steps: 0, max_steps: 2, seconds: 5.0, logging_steps: 1, save_steps: 2,
           dataloader_num_workers: 0, fp16: false}}
evaluation: {{sets: [cv/test], max_samples: 2, bootstrap: 50, max_new_tokens: 4}}
mixes:
  - name: cv
    data: {{cv/train: 1.0}}
"""


def run(env, cwd, *args, check=True):
    p = subprocess.run([sys.executable, "-m", "sweaug.cli", *map(str, args)], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"sweaug {' '.join(map(str, args))}: {p.returncode}\n{p.stdout}\n"
                             f"{p.stderr}")
    return p


@pytest.fixture(scope="module")
def user(tmp_path_factory, env):
    """A user's folder: a small corpus and a saved (tiny) Whisper, as save_pretrained writes it."""
    from sweaug.train.whisper import tiny_whisper

    d = tmp_path_factory.mktemp("pre")
    run(env, d, "build", "--sources", "cv", "--cv-dir", CV12, "--out", "corpus", "--no-progress")
    model, fe, tok = tiny_whisper(seconds=5.0, d_model=64, layers=1, heads=2, seed=1)
    for part in (model, fe, tok):
        part.save_pretrained(d / "my-whisper")
    return d


def _recipe(folder: Path, model: str) -> Path:
    p = folder / f"r-{abs(hash(model))}.yaml"
    p.write_text(RECIPE.format(model=model))
    return p


def _hub_cache(env: dict, repo: str, src: Path, files=None) -> str:
    """Lay out ``src`` as huggingface_hub's cache of the model ``repo`` (refs/main → a snapshot)."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    root = Path(env["HF_HUB_CACHE"]) / f"models--{repo.replace('/', '--')}"
    if root.exists():
        shutil.rmtree(root)
    snap = root / "snapshots" / rev
    snap.mkdir(parents=True)
    for f in src.iterdir():
        if files is None or f.name in files:
            shutil.copy2(f, snap / f.name)
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text(rev)
    return rev


def test_a_saved_folder_trains_and_evaluates(user, env):
    recipe = _recipe(user, "./my-whisper")  # relative to the recipe file
    p = run(env, user, "ablate", recipe, "--corpus", "corpus", "--dry-run")
    assert f"model {user / 'my-whisper'}: from the folder {user / 'my-whisper'}" in p.stdout
    p = run(env, user, "ablate", recipe, "--corpus", "corpus", "--out", "runs")
    res = json.loads((user / "runs" / "pre" / "cv" / "results.json").read_text())
    assert res["model_source"]["kind"] == "folder"
    assert res["train"]["steps"] == 2 and res["eval"]["cv/test"]["n"] == 2
    base = json.loads((user / "runs" / "pre" / "baseline" / "results.json").read_text())
    assert base["model"] == str(user / "my-whisper")  # the baseline is the saved model


def test_the_hf_cache_offline_and_with_an_unreachable_hub(user, env):
    rev = _hub_cache(env, "someone/whisper-sv-tiny", user / "my-whisper")
    recipe = _recipe(user, "someone/whisper-sv-tiny")
    p = run(env, user, "ablate", recipe, "--corpus", "corpus", "--dry-run")
    assert f"from the Hugging Face cache (snapshot {rev}; no request to the Hub)" in p.stdout
    # HF_HUB_OFFLINE unset and a Hub that cannot be reached (nothing listens on the port):
    # a complete cache is loaded from disk only, so nothing waits on the network
    online = dict(env, HF_ENDPOINT="http://127.0.0.1:9")
    online.pop("HF_HUB_OFFLINE")
    p = run(online, user, "ablate", recipe, "--corpus", "corpus", "--out", "runs-cache")
    res = json.loads((user / "runs-cache" / "pre" / "cv" / "results.json").read_text())
    assert res["model_source"] == {"name": "someone/whisper-sv-tiny", "kind": "cache",
                                   "revision": rev, "location": res["model_source"]["location"]}
    assert res["train"]["steps"] == 2


def _one_error_line(p) -> str:
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.strip().startswith("- ")]
    assert len(lines) == 1, p.stderr  # one line for the model, not one per mix
    return lines[0]


def test_a_model_that_is_not_here_fails_at_once(user, env):
    recipe = _recipe(user, "openai/whisper-tiny")
    for extra in (["--dry-run"], ["--out", "runs-missing"]):
        t0 = time.monotonic()
        p = run(env, user, "ablate", recipe, "--corpus", "corpus", *extra, check=False)
        took = time.monotonic() - t0
        line = _one_error_line(p)
        assert "model openai/whisper-tiny: not in the Hugging Face cache" in line
        assert "HF_HUB_OFFLINE is set" in line and "`hf download openai/whisper-tiny`" in line
        assert took < 60  # not the minutes of retries transformers spends on an unreachable Hub
    assert not (user / "runs-missing" / "pre" / "baseline").exists()  # nothing ran

    online = dict(env, HF_ENDPOINT="http://127.0.0.1:9")
    online.pop("HF_HUB_OFFLINE")
    line = _one_error_line(run(online, user, "ablate", recipe, "--corpus", "corpus",
                               "--dry-run", check=False))
    assert "the Hub cannot be reached" in line and "hf download openai/whisper-tiny" in line


def test_incomplete_folder_and_cache_name_what_is_missing(user, env, tmp_path):
    part = user / "no-features"
    shutil.copytree(user / "my-whisper", part, dirs_exist_ok=True)
    (part / "preprocessor_config.json").unlink()
    line = _one_error_line(run(env, user, "ablate", _recipe(user, "./no-features"), "--corpus",
                               "corpus", "--dry-run", check=False))
    assert f"model folder {part} has no preprocessor_config.json (the feature extractor)" in line

    line = _one_error_line(run(env, user, "ablate", _recipe(user, "./nowhere"), "--corpus",
                               "corpus", "--dry-run", check=False))
    assert "model folder" in line and "nowhere does not exist" in line

    broken = user / "broken"
    shutil.copytree(user / "my-whisper", broken, dirs_exist_ok=True)
    (broken / "config.json").write_text("{not json")
    line = _one_error_line(run(env, user, "ablate", _recipe(user, "./broken"), "--corpus",
                               "corpus", "--dry-run", check=False))
    assert "cannot load its config" in line

    weights = [f.name for f in (user / "my-whisper").iterdir() if "safetensors" in f.name]
    _hub_cache(env, "someone/no-weights", user / "my-whisper",
               files={f.name for f in (user / "my-whisper").iterdir()} - set(weights))
    line = _one_error_line(run(env, user, "ablate", _recipe(user, "someone/no-weights"),
                               "--corpus", "corpus", "--dry-run", check=False))
    assert "only partly in the Hugging Face cache (missing model.safetensors" in line
