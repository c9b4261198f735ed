"""`sweaug demo --quick`: the whole pipeline on the bundled sample, from the CLI."""
from __future__ import annotations

import csv
import json
import tarfile

from conftest import ROOT, sweaug, tree_bytes


def test_demo_quick_end_to_end(tmp_path, env):
    out = tmp_path / "demo"
    p = sweaug(env, "demo", "--quick", "--out", out)
    corpus = out / "corpus"
    m = json.loads((corpus / "manifest.json").read_text())
    assert set(m["sources"]) == {"cv", "fleurs", "rixvox"}
    for name, src in m["sources"].items():  # counts in the manifest are what the shards hold
        for split, info in src["splits"].items():
            n = 0
            for shard in info["shards"]:
                with tarfile.open(corpus / shard["path"]) as t:
                    n += sum(1 for x in t if x.name.endswith(".json"))
            assert n == info["samples"], (name, split)
    assert (corpus / "leakage.tsv").exists()
    noisy = json.loads((corpus / "cv-noisy" / "manifest.json").read_text())
    assert noisy["sources"]["cv-noisy"]["splits"]["test"]["samples"] == \
        m["sources"]["cv"]["splits"]["test"]["samples"]
    run = out / "runs" / "demo"
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert {(r["mix"], r["eval_set"]) for r in rows} >= {
        (mix, s) for mix in ("baseline", "clean", "clean+noisy")
        for s in ("cv/test", "cv-noisy/test")}
    md = (run / "report.md").read_text()
    assert md.count("| baseline (no fine-tuning) |") >= 2 and "| clean+noisy |" in md
    assert (run / "wer.png").read_bytes()[:4] == b"\x89PNG"
    assert "report:" in p.stdout and str(run / "report.md") in p.stdout
    # determinism: a mix trained again from the same shards and seed gives the same hypotheses,
    # losses and WER (CPU)
    sweaug(env, "ablate", out / "demo.yaml", "--corpus", corpus, "--out", tmp_path / "again-runs",
           "--mix", "clean")
    first = json.loads((run / "clean" / "results.json").read_text())
    second = json.loads((tmp_path / "again-runs" / "demo" / "clean" / "results.json").read_text())
    assert second["train"]["losses"] == first["train"]["losses"]
    for s in ("cv/test", "cv-noisy/test"):
        for k in ("hyps", "wer", "nwer", "eval_loss"):
            assert second["eval"][s][k] == first["eval"][s][k], (s, k)
    # determinism: the build stage again, elsewhere, gives the same bytes
    again = tmp_path / "again"
    from sweaug.demo import demo_cv
    sweaug(env, "build", "--sources", "cv,fleurs,rixvox", "--cv-dir", demo_cv(), "--fleurs-dir", ROOT / "sweaug" / "sample" / "fleurs",
           "--rixvox-dir", ROOT / "sweaug" / "sample" / "rixvox", "--out", again, "--no-progress")
    assert tree_bytes(again) == {k: v for k, v in tree_bytes(corpus).items()
                                 if not k.startswith("cv-noisy/")}


def test_demo_long_quick_end_to_end(tmp_path, env):
    """`sweaug demo --long --quick`: windows built twice, three mixes on the same utterances,
    every model evaluated on sentences, on windows (timestamps, hallucination) and long-form."""
    out = tmp_path / "long"
    p = sweaug(env, "demo", "--long", "--quick", "--out", out)
    corpus = out / "corpus"
    ns = json.loads((corpus / "cv-win-ns" / "manifest.json").read_text())["sources"]["cv-win-ns"]
    win = json.loads((corpus / "cv-win" / "manifest.json").read_text())["sources"]["cv-win"]
    assert ns["splits"]["test"]["no_speech"] >= 1 and win["splits"]["train"]["no_speech"] == 0
    assert win["splits"]["train"]["utterances"] == ns["splits"]["train"]["utterances"]
    run = out / "runs" / "demo-long"
    rows = list(csv.DictReader((run / "results.csv").open()))
    assert {(r["mix"], r["eval_set"]) for r in rows} == {
        (m, s) for m in ("baseline", "sentences", "windows", "windows+no-speech")
        for s in ("cv/test", "cv-win-ns/test", "long-form")}
    for mix in ("sentences", "windows", "windows+no-speech"):
        res = json.loads((run / mix / "results.json").read_text())
        w = res["eval"]["cv-win-ns/test"]
        assert 0 <= w["hallucination_rate"] <= 1 and w["no_speech_windows"] >= 1
        assert res["eval"]["long-form"]["n"] == 2
    md = (run / "report.md").read_text()
    assert "## long-form" in md and "Window metrics on cv-win-ns/test" in md
    assert str(run / "report.md") in p.stdout


def test_a_failed_side_by_side_job_is_an_error_naming_its_log(tmp_path, env, monkeypatch):
    """A job of the side-by-side ablation that fails stops the demo with its exit code and the
    end of its log (here: no corpus), not a report of the other job alone."""
    import os

    import pytest

    from sweaug import demo
    from sweaug.ablate.recipe import AblationError

    for k in ("SWEAUG_CACHE", "PYTHONPATH"):
        monkeypatch.setenv(k, env[k])
    recipe = tmp_path / "demo.yaml"
    recipe.write_text(demo.RECIPE.format(seed=1, max_samples=2, training=demo.TRAINING.format(
        steps=2, warmup=1, seconds=3.2, log_every=1, save_every=1)))
    lines = []
    with pytest.raises(AblationError) as e:
        demo._ablate_side_by_side(recipe, tmp_path / "runs", tmp_path / "no-corpus", lines.append)
    msg = str(e.value)
    assert "exit 2" in msg and str(tmp_path / "runs" / "logs" / "ablate-baseline-clean.log") in msg
    assert "no-corpus" in msg  # the job's own error, from its log
    assert sum("FAILED" in l for l in lines) == len(demo.JOBS)
    assert os.path.exists(tmp_path / "runs" / "logs" / "ablate-clean+noisy.log")
