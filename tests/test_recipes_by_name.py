"""Bundled recipes by name (issue #19): `sweaug recipes` lists them, `sweaug augment --recipe
NAME` and `sweaug ablate NAME` find them from any folder (the package ships them), an ablation
mix's `augment: NAME` too, and an unknown name is an error that lists the names."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import FIX, ROOT

CV12 = FIX / "cv" / "cv-corpus-12.0-2022-12-07"


def run(env, cwd, *args, check=True):
    p = subprocess.run([sys.executable, "-m", "sweaug.cli", *map(str, args)], env=env, cwd=cwd,
                       capture_output=True, text=True, timeout=600)
    if check and p.returncode != 0:
        raise AssertionError(f"sweaug {' '.join(map(str, args))}: {p.returncode}\n{p.stderr}")
    return p


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, env):
    """A folder outside the repository with a small corpus built in it."""
    d = tmp_path_factory.mktemp("user")
    run(env, d, "build", "--sources", "cv", "--cv-dir", CV12, "--out", "corpus", "--no-progress")
    return d


def test_recipes_lists_the_bundled_ones(env, elsewhere):
    p = run(env, elsewhere, "recipes")
    lines = p.stdout.splitlines()
    assert lines[0] == "augment:" and "ablation:" in lines
    for name in ("default", "noisy", "telephone", "seed-table", "data-mixes"):
        assert any(l.split()[:1] == [name] for l in lines), name
    assert "AddBackgroundNoise" in p.stdout  # each with its description
    assert str(ROOT / "sweaug" / "recipes") in p.stdout


def test_augment_by_name_from_another_folder(env, elsewhere):
    run(env, elsewhere, "augment", "corpus/cv", "--recipe", "noisy", "--seed", "1", "--out",
        "corpus/cv-aug", "--no-progress")
    m = json.loads((elsewhere / "corpus" / "cv-aug" / "manifest.json").read_text())
    assert m["format"] == "sweaug-augmented/1"
    assert m["augment"]["recipe"] == "noisy"
    assert m["augment"]["recipe_file"] == str(ROOT / "sweaug" / "recipes" / "augment" / "noisy.yaml")
    p = run(env, elsewhere, "augment", "corpus/cv", "--recipe", "nosiy", "--seed", "1", "--out",
            "x", "--no-progress", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "augment recipe nosiy" in p.stderr and "default, noisy, telephone" in p.stderr
    assert not (elsewhere / "x").exists()
    # a path that does not exist is reported as a file
    p = run(env, elsewhere, "augment", "corpus/cv", "--recipe", "my/noisy.yaml", "--seed", "1",
            "--out", "x", "--no-progress", check=False)
    assert p.returncode == 2 and "my/noisy.yaml: no such file" in p.stderr


def test_ablate_by_name_and_augment_by_name_in_a_mix(env, elsewhere):
    p = run(env, elsewhere, "ablate", "data-mixes", "--corpus", "corpus", "--dry-run",
            check=False)
    assert "Traceback" not in p.stderr
    # found the bundled recipe, then checked its shard sets against this corpus
    assert p.returncode == 2 and "no source 'fleurs' in corpus" in p.stderr
    p = run(env, elsewhere, "ablate", "seed-tabel", "--dry-run", check=False)
    assert p.returncode == 2 and "bundled ablation recipes: data-mixes, seed-table" in p.stderr

    recipe = elsewhere / "mine.yaml"
    recipe.write_text("name: mine\nmodel: tiny-random\nmixes:\n"
                      "  - {name: a, data: {cv/train: 1}, augment: telephone}\n"
                      "evaluation: {sets: [cv/test]}\n"
                      "training: {max_steps: 2, per_device_train_batch_size: 2}\n")
    p = run(env, elsewhere, "ablate", "mine.yaml", "--corpus", "corpus", "--dry-run")
    assert "on-the-fly augmentation " + str(ROOT / "sweaug" / "recipes" / "augment" /
                                            "telephone.yaml") in p.stdout
