"""Issue #14, training side: bad input never becomes bad data.

* case 8: a run killed while the Trainer saves leaves an incomplete ``checkpoint-N``; the rerun
  resumes from the previous complete one (or starts fresh), logging it;
* case 12: a truncated shard or a sample without ``.json`` is a clean error naming the shard and
  the member — before training (preflight), and where samples are read (DataLoader workers too);
* case 15: ablate / demo / app without their extra name the extra to install;
* case 17: normalized WER puts reference and hypothesis through ``sweaug.build.text.normalized_text``
  (numbers as words), the function that writes ``text_normalized``;
* case 20d: a WER over no reference words with errors is undefined (NaN, no warning), rendered
  "undefined" in the report.
"""
from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
import tarfile
import warnings
from pathlib import Path

import pytest

from conftest import sweaug

RECIPE = """name: tiny
model: tiny-random
tiny: {d_model: 64, layers: 1, heads: 2}
seed: 3
baseline: false
training: {per_device_train_batch_size: 4, gradient_accumulation_steps: 1, learning_rate: 0.002,
           warmup_steps: 1, max_steps: 12, seconds: 5.0, logging_steps: 4, save_steps: 4,
           dataloader_num_workers: 0, torch_threads: 1}
evaluation: {sets: [cv/test], max_samples: 2, bootstrap: 20, max_new_tokens: 4}
mixes:
  - name: cv
    data: {cv/train: 1.0}
"""


@pytest.fixture
def corpus(sample_cv):
    return sample_cv


def _recipe(tmp_path: Path) -> Path:
    p = tmp_path / "r.yaml"
    p.write_text(RECIPE)
    return p


# ---------------------------------------------------------------- case 8: checkpoints

KILL_AFTER_SAVE = """
import os, signal, sys
import transformers
orig = transformers.Trainer._save_checkpoint
def save(self, *a, **k):
    orig(self, *a, **k)
    if self.state.global_step == 8:
        os.kill(os.getpid(), signal.SIGKILL)  # killed right after checkpoint-8
transformers.Trainer._save_checkpoint = save
from sweaug.cli import main
sys.exit(main())
"""


def test_checkpoint_killed_while_saving_resumes_from_the_previous_one(corpus, tmp_path, env):
    runs = tmp_path / "runs"
    args = ["ablate", str(_recipe(tmp_path)), "--corpus", str(corpus), "--out", str(runs)]
    p = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVE, *args], env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == -9, p.stderr
    (ckpts,) = [d for d in (runs / "tiny" / "cv" / "checkpoints").iterdir() if d.is_dir()]
    assert {c.name for c in ckpts.iterdir() if c.is_dir()} == {"checkpoint-4", "checkpoint-8"}
    # what a kill -9 while saving leaves: the configs, written first, and nothing else
    for f in (ckpts / "checkpoint-8").iterdir():
        if not f.name.endswith("config.json"):
            f.unlink()
    again = sweaug(env, *args)
    assert "checkpoint-8 is incomplete (no model weights, sweaug_stream-rank0.json, " \
           "optimizer.pt, scheduler.pt, trainer_state.json" in again.stderr
    assert "resuming from" in again.stderr and "checkpoint-4" in again.stderr
    assert "Traceback" not in again.stderr
    res = json.loads((runs / "tiny" / "cv" / "results.json").read_text())
    assert res["train"]["resumed_from"] == "checkpoint-4" and res["train"]["steps"] == 12
    from sweaug.train.finetune import checkpoint_problem
    assert all(checkpoint_problem(c) is None for c in ckpts.iterdir()
               if c.is_dir())  # saved anew, complete


def _fake_checkpoint(folder: Path, step: int, files=("model.safetensors", "optimizer.pt",
                                                     "scheduler.pt", "sweaug_stream-rank0.json"),
                     state: str | None = None):
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    for f in files:
        (folder / f).write_bytes(b"x")
    if state is None:
        state = json.dumps({"global_step": step})
    if state:
        (folder / "trainer_state.json").write_text(state)


def test_last_complete_checkpoint(tmp_path, caplog):
    from sweaug.train.finetune import checkpoint_problem, last_complete_checkpoint

    d = tmp_path / "checkpoints"
    assert last_complete_checkpoint(d) is None  # no folder: fresh
    _fake_checkpoint(d / "checkpoint-4", 4)
    _fake_checkpoint(d / "checkpoint-8", 8, files=(), state="")  # configs only
    _fake_checkpoint(d / "checkpoint-12", 12, state='{"global_st')  # killed mid-state
    _fake_checkpoint(d / "checkpoint-16", 16, state=json.dumps({"global_step": 12}))
    _fake_checkpoint(d / "checkpoint-20", 20, files=("model.safetensors.index.json",
                                                     "optimizer.pt", "scheduler.pt",
                                                     "sweaug_stream-rank0.json"))
    (d / "checkpoint-20" / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}))
    assert "model-00001-of-00002.safetensors missing" in checkpoint_problem(d / "checkpoint-20")
    assert "unreadable trainer_state.json" in checkpoint_problem(d / "checkpoint-12")
    assert checkpoint_problem(d / "checkpoint-16") == "trainer_state.json is of step 12"
    assert last_complete_checkpoint(d, remove=False) == d / "checkpoint-4"
    assert len(list(d.iterdir())) == 5  # remove=False (ranks other than 0) deletes nothing
    with caplog.at_level("WARNING", logger="sweaug.train"):
        assert last_complete_checkpoint(d, name="cv") == d / "checkpoint-4"
    assert [c.name for c in d.iterdir()] == ["checkpoint-4"]
    assert sum("is incomplete" in r.getMessage() for r in caplog.records) == 4
    shutil.rmtree(d / "checkpoint-4")
    _fake_checkpoint(d / "checkpoint-4", 4, files=("model.safetensors",))  # no optimizer
    caplog.clear()
    with caplog.at_level("WARNING", logger="sweaug.train"):
        assert last_complete_checkpoint(d, name="cv") is None
    assert "no complete checkpoint" in caplog.text and not list(d.iterdir())


# ---------------------------------------------------------------- case 12: bad shards


def _truncate(path: Path, at: int) -> None:
    path.write_bytes(path.read_bytes()[:at])


def _drop_member(path: Path, suffix: str, index: int = 1) -> str:
    """Rewrite a shard without the ``index``-th member ending in ``suffix``; its name."""
    with tarfile.open(path) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    drop = [m.name for m, _ in members if m.name.endswith(suffix)][index]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        for m, data in members:
            if m.name != drop:
                out.addfile(m, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return drop


def _member_offsets(path: Path) -> list[int]:
    with tarfile.open(path) as t:
        return [m.offset for m in t.getmembers()]


@pytest.fixture()
def bad_corpus(corpus, tmp_path):
    out = tmp_path / "corpus"
    shutil.copytree(corpus, out)
    return out


@pytest.mark.parametrize("damage", ["mid-member", "member-boundary", "no-json"])
def test_bad_shard_fails_before_training(bad_corpus, tmp_path, env, damage):
    train = bad_corpus / "cv" / "train-000000.tar"
    test = bad_corpus / "cv" / "test-000000.tar"
    if damage == "mid-member":
        _truncate(train, train.stat().st_size // 2)
        want = [f"{train}: ", "truncated"]
    elif damage == "member-boundary":  # a tar reader would just see fewer samples here
        _truncate(train, _member_offsets(train)[20])
        want = [f"{train}: ", "but its manifest says", "truncated"]
    else:
        drop = _drop_member(test, ".json")
        want = [f"{test}: ", f"has no member {drop}"]
    runs = tmp_path / "runs"
    p = sweaug(env, "ablate", _recipe(tmp_path), "--corpus", bad_corpus, "--out", runs,
               check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert all(w in p.stderr for w in want), p.stderr
    assert not (runs / "tiny" / "cv").exists()  # failed before training


def test_check_shard(corpus, tmp_path):
    from sweaug.build.shards import ShardReadError
    from sweaug.train.samples import check_shard

    good = corpus / "cv" / "train-000000.tar"
    n = check_shard(good, good.stat().st_size, 30)
    assert n == 30
    with pytest.raises(ShardReadError, match="30 samples, but its manifest says 31"):
        check_shard(good, None, 31)
    bad = tmp_path / "t.tar"
    shutil.copy(good, bad)
    offsets = _member_offsets(bad)
    _truncate(bad, offsets[5] + 700)  # inside the data of member 5
    with pytest.raises(ShardReadError, match=r"ends past the end of the file"):
        check_shard(bad)
    bad.write_bytes(b"not a tar at all" * 40)
    with pytest.raises(ShardReadError, match=r"t\.tar: unreadable shard .*at its first member"):
        check_shard(bad)
    shutil.copy(good, bad)
    drop = _drop_member(bad, ".flac", index=0)
    with pytest.raises(ShardReadError, match=f"has no member {drop}"):
        check_shard(bad)


def test_readers_name_the_shard_and_member(corpus, tmp_path):
    """Where samples are read (evaluation, the kept-token scan, training in a DataLoader
    worker), without the preflight: the same clean error, naming shard and member."""
    from torch.utils.data import DataLoader

    from sweaug.records import SourceError
    from sweaug.build.shards import ShardReadError, iter_samples
    from sweaug.train.evaluate import shard_samples
    from sweaug.train.mix import MixStream
    from sweaug.train.vocab import transcript_tokens

    good = corpus / "cv" / "train-000000.tar"
    truncated, header, nojson = (tmp_path / f"{n}.tar" for n in ("truncated", "header", "nojson"))
    for f in (truncated, header, nojson):
        shutil.copy(good, f)
    member10 = _member_offsets(good)[10]  # the header of member 10, a .flac
    _truncate(truncated, member10 + 512 + 100)  # inside its data
    _truncate(header, member10 + 100)  # inside its header: tarfile alone sees an end here
    drop = _drop_member(nojson, ".json", index=2)
    with pytest.raises(ShardReadError) as e:
        list(iter_samples(truncated))
    assert isinstance(e.value, SourceError) and isinstance(e.value, tarfile.ReadError)
    assert str(e.value).startswith(f"{truncated}: unreadable shard")
    assert "reading member" in str(e.value) and ".flac'" in str(e.value)
    with pytest.raises(ShardReadError, match="truncated shard .*without the end-of-archive"):
        list(iter_samples(header, only=("json",)))

    tok = type("T", (), {"__call__": lambda self, t: type("I", (), {"input_ids": [1]})()})()
    for shard, what in ((truncated, "unreadable shard"), (header, "truncated shard"),
                        (nojson, f"has no member {drop}")):
        with pytest.raises(ShardReadError, match=what) as e:
            list(shard_samples([shard]))
        assert str(shard) in str(e.value)
        with pytest.raises(ShardReadError, match=what):
            transcript_tokens([[shard]], tok)
        ds = MixStream([([shard], 1.0)], tok, lambda a: a[:10], seed=0)
        with pytest.raises(ShardReadError) as e:
            for i, _ in enumerate(DataLoader(ds, batch_size=None, num_workers=1)):
                assert i < 200
        msg = str(e.value)  # torch re-raises it from the worker: the original message kept
        assert msg.startswith(f"{shard}: ") and what in msg, msg
        assert "Traceback" not in msg and msg.endswith("(in DataLoader worker process 0)")


# ---------------------------------------------------------------- case 15: missing extras


def _without(env: dict, tmp_path: Path, module: str) -> dict:
    """``env`` in which ``import <module>`` fails, as when its package is not installed."""
    shim = tmp_path / f"no-{module}"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(f"import sys\nsys.modules[{module!r}] = None\n")
    return {**env, "PYTHONPATH": f"{shim}:{env['PYTHONPATH']}"}


@pytest.mark.parametrize("module", ["tensorboard", "torch"])
def test_ablate_and_demo_name_the_train_extra(corpus, tmp_path, env, module):
    e = _without(env, tmp_path, module)
    pip = 'pip install -c constraints.txt -e ".[train]"'
    p = sweaug(e, "ablate", _recipe(tmp_path), "--corpus", corpus, "--out", tmp_path / "runs",
               check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"error: sweaug ablate needs the train extra (no module named '{module}'): {pip}" \
        in p.stderr
    assert not (tmp_path / "runs").exists()
    p = sweaug(e, "demo", "--quick", "--out", tmp_path / "demo", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert f"error: sweaug demo needs the train extra (no module named '{module}')" in p.stderr
    assert not (tmp_path / "demo").exists()  # before the build
    p = sweaug(e, "ablate", _recipe(tmp_path), "--corpus", corpus, "--out", tmp_path / "runs",
               "--dry-run", check=False)  # a dry run checks the recipe and shards only
    assert p.returncode == 0 and "checked 2 shard(s) of 2 set(s): complete" in p.stdout, p.stderr


def test_app_names_the_app_extra(tmp_path, env):
    from sweaug.train.whisper import tiny_whisper

    model = tmp_path / "m"
    for part in tiny_whisper(seconds=1.0, seed=0, d_model=64, layers=1, heads=2):
        part.save_pretrained(str(model))
    p = sweaug(_without(env, tmp_path, "gradio"), "app", model, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert "error: sweaug app needs the app extra (no module named 'gradio'): " \
           'pip install -c constraints.txt -e ".[app]"' in p.stderr


# ---------------------------------------------------------------- case 17: normalized WER


def test_normalized_wer_spells_numbers_on_both_sides():
    from sweaug.build.text import normalized_text
    from sweaug.train import evaluate as ev

    refs = ["Hon kom hem klockan 3.", "Vi var 2 st."]
    hyps = ["hon kom hem klockan tre", "vi var två st"]
    old = ev.wer_stats([ev.basic_normalize(r) for r in refs], [ev.basic_normalize(h) for h in hyps])
    assert sum(old[0]) == 2  # Whisper's basic normalizer: "3" vs "tre" is an error
    s = ev.normalized_scores(refs, hyps, "sv", bootstrap=50)
    assert s["nerrors"] == [0, 0] and s["nwer"] == 0.0
    assert s["normalizer"] == ev.NORMALIZER and ev.NORMALIZER.startswith(
        "sweaug.text.normalized_text/")
    assert ev.wer_normalize("Klockan är 3.") == normalized_text("Klockan är 3.", "sv") \
        == "klockan är tre"


def test_reference_side_is_text_normalized(corpus):
    """The reference's normalized form is its sample's stored ``text_normalized``."""
    from sweaug.build.shards import iter_samples
    from sweaug.train.evaluate import wer_normalize

    metas = [json.loads(f["json"]) for shard in sorted((corpus / "cv").glob("*.tar"))
             for _, f in iter_samples(shard, only=("json",))]
    assert len(metas) > 30
    assert all(wer_normalize(m["text"], m["language"]) == m["text_normalized"] for m in metas)


def test_report_states_and_applies_one_normalizer(tmp_path):
    """report.md says what normalized WER is; an evaluation from an older sweaug (Whisper's
    basic normalizer, digits kept) is recomputed from its stored transcripts, and named."""
    from sweaug.ablate.run import RUN_FORMAT, report_run
    from sweaug.train import evaluate as ev

    refs, hyps = ["Han kom klockan 7.", "Det regnar."], ["han kom klockan sju", "det regnar"]
    errors, words = ev.wer_stats(refs, hyps)
    wer, lo, hi = ev.bootstrap_ci(errors, words, 100)
    old_e, old_w = ev.wer_stats([ev.basic_normalize(r) for r in refs],
                                [ev.basic_normalize(h) for h in hyps])
    nwer, nlo, nhi = ev.bootstrap_ci(old_e, old_w, 100)
    assert nwer == pytest.approx(1 / 6)  # "7" vs "sju": an error under the old normalizer
    entry = {"n": 2, "language": "sv", "task": "transcribe", "eval_loss": 1.0, "wer": wer,
             "wer_lo": lo, "wer_hi": hi, "nwer": nwer, "nwer_lo": nlo, "nwer_hi": nhi,
             "keys": ["a", "b"], "refs": refs, "hyps": hyps, "errors": errors, "words": words,
             "nerrors": old_e, "nwords": old_w, "bootstrap": 100, "seed": 0, "alpha": 0.05}
    run = tmp_path / "r"
    (run / "m").mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({
        "format": RUN_FORMAT, "recipe": "r", "recipe_path": "r.yaml", "corpus": "c",
        "model": "tiny-random", "language": "sv", "task": "transcribe", "eval_sets": ["cv/test"],
        "reference": None, "models": [{"name": "m", "hash": "h", "baseline": False}]}))
    (run / "m" / "results.json").write_text(json.dumps(
        {"mix": "m", "baseline": False, "hash": "h", "eval": {"cv/test": entry}}))
    report_run(run, echo=lambda *a: None)
    md = (run / "report.md").read_text()
    assert "`sweaug.build.text.normalized_text` (the samples' `text_normalized`)" in md
    assert "numbers as Swedish words" in md and "BasicTextNormalizer" not in md
    assert "normalized WER recomputed from the stored transcripts" in md and "m on cv/test" in md
    row = [l for l in md.splitlines() if l.startswith("| m |")][-1]  # the cv/test table
    assert row.split("|")[5].strip() == "0.0"  # normalized WER: "7" and "sju" match


# ---------------------------------------------------------------- case 20d: undefined WER


def test_wer_on_no_reference_words_is_undefined_without_warning():
    from sweaug.train import evaluate as ev

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all(math.isnan(x) for x in ev.bootstrap_ci([3], [0], n=50))
        assert all(math.isnan(x) for x in ev.paired_bootstrap_diff([3], [0], [1], n=50))
        assert all(math.isnan(x) for x in ev.paired_bootstrap_diff([0], [0], [2], n=50))
        assert ev.bootstrap_ci([0], [0], n=10) == (0.0, 0.0, 0.0)
        assert math.isnan(ev.corpus_wer([3], [0]))
        # some word-less utterances: the resamples without words are left out, not NaN/inf
        wer, lo, hi = ev.bootstrap_ci([3, 1], [0, 5], n=200)
        assert wer == 0.8 and 0.2 <= lo <= hi <= 0.8
        d, lo, hi, p = ev.paired_bootstrap_diff([3, 1], [0, 5], [1, 0], n=200)
        assert all(math.isfinite(x) for x in (d, lo, hi, p))


def test_report_renders_undefined(tmp_path):
    from sweaug.ablate.report import write_report
    from sweaug.train import evaluate as ev

    def entry(errors, words):
        wer, lo, hi = ev.bootstrap_ci(errors, words, 50)
        return {"n": 1, "language": "sv", "task": "transcribe", "eval_loss": 2.0, "wer": wer,
                "wer_lo": lo, "wer_hi": hi, "nwer": wer, "nwer_lo": lo, "nwer_hi": hi,
                "keys": ["k"], "errors": errors, "words": words, "nerrors": errors,
                "nwords": words}

    rows = [{"mix": "baseline", "baseline": True, "eval": {"blank/test": entry([3], [0])}},
            {"mix": "a", "eval": {"blank/test": entry([1], [0])}}]
    paths = write_report(tmp_path, rows, None, ["blank/test"], [], bootstrap=50)
    md = paths["report.md"].read_text()
    section = md.split("## blank/test\n")[1]
    rows_md = [l for l in section.splitlines() if l.startswith(("| baseline (no", "| a |"))]
    assert len(rows_md) == 2 and all(l.count("undefined") >= 4 for l in rows_md), rows_md
    assert not any("inf" in l or "nan" in l.lower() for l in rows_md), rows_md
