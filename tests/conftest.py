"""Shared helpers: run the CLI as a user would (a subprocess), with every cache in tmp and the
Hub offline (the same code path as online, resolved from a local HF cache)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
CV12 = FIX / "cv" / "cv-corpus-12.0-2022-12-07"
CV17_TAR = FIX / "cv" / "cv-corpus-17.0-2024-03-15-sv-SE.tar.gz"


@pytest.fixture(scope="session")
def expected() -> dict:
    return json.loads((FIX / "expected.json").read_text())


@pytest.fixture(scope="session")
def env(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("env")
    e = dict(os.environ)
    e.update(SWEAUG_CACHE=str(base / "sweaug-cache"), HF_HUB_CACHE=str(base / "hf-hub"),
             HF_HUB_OFFLINE="1", HF_DATASETS_CACHE=str(base / "hf-datasets"),
             PYTHONPATH=str(ROOT) + os.pathsep + e.get("PYTHONPATH", ""))
    return e


def _build_sample(tmp_path_factory, env: dict, sources: str) -> Path:
    out = tmp_path_factory.mktemp("sample-" + sources.replace(",", "-")) / "corpus"
    args = ["--cv-dir", ROOT / "sweaug" / "sample" / "cv"]
    if "fleurs" in sources:
        args += ["--fleurs-dir", ROOT / "sweaug" / "sample" / "fleurs"]
    sweaug(env, "build", "--sources", sources, *args, "--out", out, "--no-progress")
    return out


@pytest.fixture(scope="session")
def sample_corpus(tmp_path_factory, env) -> Path:
    """The bundled sample (cv + fleurs) built once for the session; tests only read it."""
    return _build_sample(tmp_path_factory, env, "cv,fleurs")


@pytest.fixture(scope="session")
def sample_cv(tmp_path_factory, env) -> Path:
    """The bundled sample's cv alone, built once for the session; tests only read it."""
    return _build_sample(tmp_path_factory, env, "cv")


def tiny_recipe(name: str, seed: int, rest: str, *, max_steps: int = 4, logging_steps: int = 2,
                save_steps: int = 4) -> str:
    """An ablation recipe on a tiny random Whisper (d_model 64, one layer) that trains in
    seconds on a CPU; ``rest`` is the recipe's evaluation/mixes part, as YAML."""
    return f"""name: {name}
model: tiny-random
tiny: {{d_model: 64, layers: 1, heads: 2}}
seed: {seed}
training: {{per_device_train_batch_size: 4, gradient_accumulation_steps: 1, learning_rate: 0.002,
           warmup_steps: 1, max_steps: {max_steps}, seconds: 5.0, logging_steps: {logging_steps},
           save_steps: {save_steps}, dataloader_num_workers: 0}}
""" + rest


def seed_hub_cache(env: dict, repo_id: str, revision: str, src: Path, subset=None) -> None:
    """Lay out ``src`` as huggingface_hub's cache snapshot of ``repo_id@revision``."""
    snap = Path(env["HF_HUB_CACHE"]) / f"datasets--{repo_id.replace('/', '--')}" / "snapshots" / revision
    if snap.exists():
        shutil.rmtree(snap)
    shutil.copytree(src, snap, ignore=subset)


def sweaug(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([sys.executable, "-m", "sweaug.cli", *map(str, args)], env=env,
                       capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"sweaug {' '.join(map(str, args))} failed ({p.returncode}):\n"
                             f"{p.stdout}\n{p.stderr}")
    return p


def tree_bytes(out: Path) -> dict[str, bytes]:
    """Every shard, the manifest and leakage.tsv of a build, by relative path."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and ".sweaug" not in p.parts)
    return {str(p.relative_to(out)): p.read_bytes() for p in files}
