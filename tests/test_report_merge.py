"""A recipe split into jobs — `sweaug ablate --mix` once per model, as SLURM array tasks would —
then `sweaug report RUN_DIR` gives the same report as one full run; partial and stale runs are
named; bad `--mix` names and folders are clear errors."""
from __future__ import annotations

import csv

import pytest

from conftest import sweaug, tiny_recipe

RECIPE = tiny_recipe("split", 7, """\
evaluation: {sets: [cv/test], max_samples: 4, bootstrap: 100, max_new_tokens: 10}
reference: a
mixes:
  - name: a
    data: {cv/train: 1.0}
  - name: b
    data: {cv/train: 1.0, fleurs/train: 1.0}
    training: {learning_rate: LR_B}
""", max_steps=3, logging_steps=1, save_steps=100)


@pytest.fixture
def corpus(sample_corpus):
    return sample_corpus


def _outputs(run) -> dict[str, bytes]:
    return {n: (run / n).read_bytes() for n in ("results.csv", "report.md", "wer.png")}


def test_jobs_then_report_equal_one_full_run(corpus, tmp_path, env):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("LR_B", "0.001"))
    common = ["--corpus", corpus]
    sweaug(env, "ablate", recipe, *common, "--out", tmp_path / "full")
    full = tmp_path / "full" / "split"

    jobs = tmp_path / "jobs"
    p = sweaug(env, "ablate", recipe, *common, "--out", jobs, "--mix", "b")
    assert "baseline: evaluating" not in p.stdout  # --mix: the baseline only when named
    run = jobs / "split"
    assert not (run / "baseline").exists() and not (run / "a").exists()
    p = sweaug(env, "report", run)  # partial: b only; the reference a has not finished
    assert "not finished: baseline, a" in p.stdout
    md = (run / "report.md").read_text()
    assert "**Incomplete:** 2 model(s) not finished yet: `baseline`, `a`" in md
    assert "| a | not finished |" in md and "the reference 'a' has not finished" in md
    assert [r["mix"] for r in csv.DictReader((run / "results.csv").open())] == ["b"]

    sweaug(env, "ablate", recipe, *common, "--out", jobs, "--mix", "a", "--mix", "baseline")
    p = sweaug(env, "report", run)
    assert "not finished" not in p.stdout
    assert _outputs(run) == _outputs(full)  # byte for byte: csv, markdown, plot
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert [r["mix"] for r in rows] == ["baseline", "a", "b"]
    assert rows[2]["diff"] != "" and rows[0]["wer"] != ""  # b against the reference a

    # the recipe changed (b's learning rate): b's result is stale, a's still counts
    recipe.write_text(RECIPE.replace("LR_B", "0.0005"))
    p = sweaug(env, "ablate", recipe, *common, "--out", jobs, "--mix", "a")
    assert "a: finished earlier, skipped" in p.stdout and "not finished: b" in p.stdout
    md = (run / "report.md").read_text()
    assert "left out, results of other recipe settings (re-run them): b" in md
    assert [r["mix"] for r in csv.DictReader((run / "results.csv").open())] == ["baseline", "a"]


def test_bad_mix_names_and_run_folders(corpus, tmp_path, env):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("LR_B", "0.001"))
    p = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", tmp_path / "o", "--mix", "c",
               check=False)
    assert p.returncode == 2 and "--mix c: no such mix" in p.stderr \
        and "(it has: baseline, a, b)" in p.stderr
    recipe.write_text(RECIPE.replace("LR_B", "0.001").replace("mixes:", "baseline: false\nmixes:"))
    p = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", tmp_path / "o", "--mix",
               "baseline", check=False)
    assert p.returncode == 2 and "sets `baseline: false`" in p.stderr
    recipe.write_text(RECIPE.replace("LR_B", "0.001").replace("name: b", "name: baseline"))
    p = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", tmp_path / "o", check=False)
    assert p.returncode == 2 and "may not be named 'baseline'" in p.stderr
    assert not (tmp_path / "o").exists()

    p = sweaug(env, "report", tmp_path, check=False)
    assert p.returncode == 2 and "no run.json" in p.stderr and "Traceback" not in p.stderr
    (tmp_path / "run.json").write_text('{"format": "sweaug-ablation-run/1", "recipe": "x", '
                                       '"models": [{"name": "a", "hash": "h"}]}')
    p = sweaug(env, "report", tmp_path, check=False)
    assert p.returncode == 2 and "no model has finished yet" in p.stderr
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "results.json").write_text("{not json")
    p = sweaug(env, "report", tmp_path, check=False)
    assert p.returncode == 2 and "a/results.json: unreadable" in p.stderr
    assert "Traceback" not in p.stderr
