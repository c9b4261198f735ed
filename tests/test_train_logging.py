"""What training prints and keeps (issue #19, point 5): one line per logging step on the console
(step, loss, lr, samples/s, ETA), none of the Trainer's raw dicts or progress bars, and every
logged dict as JSON lines in the mix's run folder (sweaug/train/trainlog.py)."""
from __future__ import annotations

import json
import re

import pytest

from conftest import sweaug

RECIPE = """name: trainlog
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 3
baseline: false
training: {per_device_train_batch_size: 8, gradient_accumulation_steps: 1, learning_rate: 0.002,
           warmup_steps: 2, max_steps: 12, seconds: 5.0, logging_steps: 4, save_steps: 6,
           dataloader_num_workers: 0}
evaluation: {sets: [cv/test], max_samples: 4, bootstrap: 50}
mixes:
  - name: cv
    data: {cv/train: 1.0}
"""
LINE = re.compile(r"\[train\] cv: step (\d+)/12  loss \d+\.\d{3}  lr [0-9.e+-]+  "
                  r"\d+\.\d samples/s  ETA \d\d:\d\d")


@pytest.fixture
def corpus(sample_cv):
    return sample_cv


def test_one_line_per_logging_step_and_raw_logs_in_the_run_folder(corpus, tmp_path, env):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE)
    p = sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", tmp_path / "runs")
    lines = [l for l in p.stdout.splitlines() if l.startswith("[train] cv: step")]
    assert [int(LINE.fullmatch(l).group(1)) for l in lines] == [4, 8, 12], p.stdout
    assert re.search(r"^\[train\] cv: done, step 12/12 in \d\d:\d\d, [\d.]+ samples/s$",
                     p.stdout, re.M), p.stdout
    for out in (p.stdout, p.stderr):  # no raw Trainer dicts, no tqdm bars of training/saving
        assert "{'loss'" not in out and "'train_runtime'" not in out
        assert "Writing model shards" not in out
    assert "it/s]" not in p.stdout
    folder = tmp_path / "runs" / "trainlog" / "cv"
    assert f"log: {folder / 'train_log.jsonl'}" in p.stdout
    records = [json.loads(l) for l in (folder / "train_log.jsonl").read_text().splitlines()]
    assert records[0]["start"]["max_steps"] == 12 and records[0]["start"]["resumed_from"] is None
    logs = [r for r in records if "log" in r]
    losses = [r for r in logs if "loss" in r["log"]]
    assert [r["step"] for r in losses] == [4, 8, 12]
    assert all({"loss", "grad_norm", "learning_rate", "epoch"} <= set(r["log"]) for r in losses)
    assert any("train_runtime" in r["log"] for r in logs)
    assert all(set(r) == {"time", "step", "warning", "from"} for r in records
               if "warning" in r and not r["from"].startswith("py.warnings"))
    res = json.loads((folder / "results.json").read_text())
    assert res["train"]["log_file"] == "train_log.jsonl"
    assert [s for s, _ in res["train"]["losses"]] == [4, 8, 12]


def test_quiet_transformers_routes_and_restores(tmp_path, caplog, recwarn):
    import logging
    import warnings

    import huggingface_hub.utils as hub
    from transformers.utils import logging as tlog

    from sweaug.train.trainlog import JsonLines, clock, quiet_transformers

    tlog.enable_progress_bar()
    before = tlog.get_verbosity()
    sink = JsonLines(tmp_path / "t.jsonl")
    sink.step = 7
    with caplog.at_level(logging.WARNING, logger="sweaug.train"):
        with quiet_transformers(sink, file_only=("only in the file",)):
            assert not tlog.is_progress_bar_enabled() and hub.are_progress_bars_disabled()
            tlog.get_logger("transformers.trainer").warning("a transformers warning")
            tlog.get_logger("transformers.trainer").warning("only in the file, this")
            tlog.get_logger("transformers.trainer").info("not at warning level")
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.warn("a python warning", UserWarning)
                # a library's deprecation of its own internals (raised outside sweaug): the file
                warnings.warn_explicit("old api", FutureWarning, "/site-packages/lib.py", 1)
    sink.close()
    assert tlog.is_progress_bar_enabled() and not hub.are_progress_bars_disabled()
    assert tlog.get_verbosity() == before
    printed = [r.getMessage() for r in caplog.records if r.name == "sweaug.train"]
    assert printed == ["transformers: a transformers warning"]
    got = [json.loads(l) for l in (tmp_path / "t.jsonl").read_text().splitlines()]
    assert [(g["step"], g["warning"], g["from"]) for g in got] == [
        (7, "a transformers warning", "transformers.trainer"),
        (7, "only in the file, this", "transformers.trainer"),
        (7, "a python warning", "py.warnings:UserWarning"),
        (7, "old api", "py.warnings:FutureWarning")]
    assert [str(w.message) for w in recwarn] == ["a python warning"]  # printed, as before
    assert (clock(65), clock(3725), clock(None)) == ("01:05", "1:02:05", "--:--")


def test_quiet_transformers_stops_propagation_under_ci(tmp_path, caplog):
    """transformers lets its records propagate to Python's root logger when ``CI`` is set; inside
    quiet_transformers they must not (a file-only record would print through the root handler),
    and the setting comes back afterwards."""
    import logging

    from transformers.utils import logging as tlog

    from sweaug.train.trainlog import JsonLines, quiet_transformers

    root = tlog.get_logger()
    before = root.propagate
    root.propagate = True  # what transformers does with CI=true
    try:
        sink = JsonLines(tmp_path / "t.jsonl")
        with caplog.at_level(logging.WARNING):
            with quiet_transformers(sink, file_only=("only in the file",)):
                tlog.get_logger("transformers.trainer").warning("only in the file, this")
        sink.close()
        assert [r.name for r in caplog.records] == []
        assert root.propagate is True
    finally:
        root.propagate = before


def test_demo_reads_the_new_progress_lines(tmp_path):
    from sweaug.demo import _last_progress

    log = tmp_path / "job.log"
    log.write_text("cv: training (12 steps)\n"
                   "[train] cv: step 4/12  loss 10.775  lr 0.002  29.8 samples/s  ETA 00:02\n"
                   "WARNING sweaug.train: transformers: something\n")
    assert _last_progress(log) == "cv: step 4/12  loss 10.775  lr 0.002  29.8 samples/s  ETA 00:02"
