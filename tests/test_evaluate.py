"""Evaluation (normalizer, WER, bootstrap, language/task guard, evaluate_set) and the ablation
report. Offline: a tiny random Whisper on the real vocabulary, synthetic audio."""
from __future__ import annotations

import copy
import csv
import math

import jiwer
import numpy as np
import pytest

from sweaug.train import evaluate as ev

pytest.importorskip("matplotlib")


# ---------------------------------------------------------------- normalizer


@pytest.mark.parametrize("text, want", [
    ("Åsa går hem.", "åsa går hem"),
    ("ÄPPLE och ÖL!", "äpple och öl"),
    ("A\u030asa g\u0061\u030ar", "åsa går"),  # decomposed å composes (NFKC), not a space
    ("Hej [skratt] du (paus) där", "hej du där"),
    ("Vad <unk> heter du?", "vad heter du"),
    ("Det är 1,5 km—inte 2!", "det är 1 5 km inte 2"),
    ("«Ja», sa hon: \"nej\"…", "ja sa hon nej"),
    ("  många   mellanslag\t\n ", "många mellanslag"),
    ("", ""),
])
def test_basic_normalize(text, want):
    """transformers' BasicTextNormalizer, pinned on the Swedish cases: a transformers release
    that changes what it does to å/ä/ö, brackets or punctuation fails here."""
    assert ev.basic_normalize(text) == want


# ---------------------------------------------------------------- WER and bootstrap

REFS = ["det här är ett test", "hej då", "Åsa går hem", "en två tre fyra fem", "", "ja"]
HYPS = ["det här är test", "hej hej då", "åsa gick hem", "en två tre fyra fem", "öh", ""]


def test_wer_stats_matches_jiwer():
    errors, words = ev.wer_stats(REFS, HYPS)
    assert words == [5, 2, 3, 5, 0, 1]
    assert errors == [1, 1, 2, 0, 1, 1]  # empty reference: the hypothesis word is an insertion
    nonempty = [i for i, r in enumerate(REFS) if r]
    assert sum(errors) / sum(words) == pytest.approx(jiwer.wer(REFS, HYPS))
    for i in nonempty:
        assert errors[i] / words[i] == pytest.approx(jiwer.wer(REFS[i], HYPS[i]))
    n_err, n_words = ev.wer_stats([ev.basic_normalize(r) for r in REFS],
                                  [ev.basic_normalize(h) for h in HYPS])
    assert n_err[2] == 1  # Åsa/åsa only differ orthographically
    assert ev.wer_stats([], []) == ([], [])
    assert ev.wer_stats([""], [""]) == ([0], [0])
    with pytest.raises(ValueError):
        ev.wer_stats(["a"], [])


def test_bootstrap_ci_contains_estimate_and_narrows():
    rng = np.random.default_rng(1)
    words = rng.integers(3, 15, size=2000)
    errors = rng.binomial(words, 0.2)
    small = ev.bootstrap_ci(errors[:50], words[:50], n=1000, seed=0)
    large = ev.bootstrap_ci(errors, words, n=1000, seed=0)
    for wer, lo, hi in (small, large):
        assert lo <= wer <= hi
        assert 0.1 < wer < 0.3
    assert large[2] - large[1] < 0.5 * (small[2] - small[1])
    assert large[0] == pytest.approx(errors.sum() / words.sum())
    assert ev.bootstrap_ci(errors, words, n=500, seed=3) == ev.bootstrap_ci(errors, words, n=500,
                                                                             seed=3)
    assert ev.bootstrap_ci([0, 0], [0, 0], n=10) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError):
        ev.bootstrap_ci([], [], n=10)


def test_paired_bootstrap_diff():
    rng = np.random.default_rng(2)
    words = rng.integers(3, 15, size=300)
    a = rng.binomial(words, 0.30)
    better = np.minimum(rng.binomial(words, 0.15), words)
    diff, lo, hi, p = ev.paired_bootstrap_diff(a, words, better, n=1000, seed=0)
    assert diff == pytest.approx(better.sum() / words.sum() - a.sum() / words.sum())
    assert lo <= diff <= hi < 0 and p > 0.99
    assert ev.verdict(lo, hi) == "better"
    assert ev.verdict(*ev.paired_bootstrap_diff(better, words, a, n=1000, seed=0)[1:3]) == "worse"
    # a tie: the same errors shuffled across utterances of equal length -> no significant diff
    same_words = np.full(300, 8)
    a8 = rng.binomial(same_words, 0.3)
    tie8 = a8.copy()
    rng.shuffle(tie8)
    d, lo, hi, p = ev.paired_bootstrap_diff(a8, same_words, tie8, n=1000, seed=0)
    assert d == pytest.approx(0.0) and lo < 0 < hi and 0.2 < p < 0.8
    assert ev.verdict(lo, hi) == "no significant difference"
    # identical systems: every resampled difference is 0
    assert ev.paired_bootstrap_diff(a, words, a, n=200, seed=0) == (0.0, 0.0, 0.0, 0.0)
    assert ev.paired_bootstrap_diff(a, words, better, n=500, seed=7) == \
        ev.paired_bootstrap_diff(a, words, better, n=500, seed=7)
    with pytest.raises(ValueError):
        ev.paired_bootstrap_diff(a, words, better[:-1], n=10)


# ---------------------------------------------------------------- model fixtures


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from sweaug.train.whisper import tiny_whisper

    return tiny_whisper(seconds=2.0, d_model=64, seed=0,
                        cache_dir=tmp_path_factory.mktemp("tok"))


def _clips(n=4):
    rng = np.random.default_rng(0)
    texts = ["Hej då.", "Åsa går hem.", "Det är bra, tack!", "Tre."]
    return [{"key": f"clip{i}", "text": texts[i % 4],
             "audio": (0.1 * rng.standard_normal(8000 + 4000 * i)).astype(np.float32)}
            for i in range(n)]


# ---------------------------------------------------------------- guard


def test_guard_passes_on_tiny_whisper(tiny):
    model, _, tok = tiny
    ids = ev.check_generation_config(model, "sv", "transcribe")
    assert ids == {"language_token": "<|sv|>", "language_id": tok.convert_tokens_to_ids("<|sv|>"),
                   "task_id": tok.convert_tokens_to_ids("<|transcribe|>")}
    assert ev.generate_kwargs(model, "swedish", "transcribe") == {"language": "sv",
                                                                  "task": "transcribe"}
    assert ev.generate_kwargs(model, "<|sv|>", "transcribe")["language"] == "sv"


@pytest.mark.parametrize("breakage, match", [
    (lambda g: delattr(g, "lang_to_id"), "lang_to_id"),
    (lambda g: setattr(g, "lang_to_id", {"<|en|>": 50259}), "not in"),
    (lambda g: delattr(g, "task_to_id"), "task_to_id"),
    (lambda g: setattr(g, "is_multilingual", False), "not multilingual"),
])
def test_guard_refuses_unforceable_model(tiny, breakage, match):
    model = copy.copy(tiny[0])  # shallow: shares the weights, own generation config below
    model.generation_config = copy.deepcopy(tiny[0].generation_config)
    breakage(model.generation_config)
    with pytest.raises(ev.EvaluationError, match=match):
        ev.check_generation_config(model, "sv", "transcribe")
    with pytest.raises(ev.EvaluationError):
        ev.evaluate_set(model, tiny[2], tiny[1], _clips(), max_new_tokens=4)


def test_guard_rejects_bad_language_and_task(tiny):
    with pytest.raises(ev.EvaluationError, match="language"):
        ev.check_generation_config(tiny[0], "klingon", "transcribe")
    with pytest.raises(ev.EvaluationError, match="task"):
        ev.check_generation_config(tiny[0], "sv", "summarize")


# ---------------------------------------------------------------- evaluate_set


def test_label_ids_equal_prefixed_tokenizer(tiny, tmp_path):
    from sweaug.train.whisper import offline_tokenizer

    tok = tiny[2]
    prefixed = offline_tokenizer(tmp_path)  # its own instance: set_prefix_tokens mutates it
    prefixed.set_prefix_tokens(language="swedish", task="transcribe")
    for text in ["Åsa går hem.", "Hej!", ""]:
        assert ev.label_ids(tok, text, "sv", "transcribe") == prefixed(text).input_ids


def test_evaluate_set_tiny_model(tiny):
    import torch

    model, fe, tok = tiny
    calls = []
    real_generate = model.generate

    def spy(*args, **kw):
        calls.append(kw)
        return real_generate(*args, **kw)

    model.generate = spy
    model.train()
    try:
        r = ev.evaluate_set(model, tok, fe, _clips(4), batch_size=3, max_new_tokens=6, bootstrap=200)
        assert model.training  # the caller's mode is restored
    finally:
        del model.generate
        model.eval()
    assert all(c["language"] == "sv" and c["task"] == "transcribe" for c in calls)
    assert len(calls) == 2  # batches of 3 + 1
    assert r["n"] == 4 and r["capped"] is False and r["keys"] == [f"clip{i}" for i in range(4)]
    assert r["refs"] == [c["text"] for c in _clips(4)] and len(r["hyps"]) == 4
    assert math.isfinite(r["eval_loss"]) and r["eval_loss"] > 0
    assert r["tokens"] == sum(len(ev.label_ids(tok, t)) - 1 for t in r["refs"])
    for k in ("wer", "nwer"):
        assert 0 <= r[k] < math.inf and r[f"{k}_lo"] <= r[k] <= r[f"{k}_hi"]
    assert r["wer"] == pytest.approx(jiwer.wer(r["refs"], r["hyps"]))
    assert sum(r["errors"]) / sum(r["words"]) == pytest.approx(r["wer"])
    import json

    assert json.loads(json.dumps(r)) == r  # plain Python types: the caller can store it

    # the hypotheses are those of a plain forced generate on the same features
    from sweaug.train.features import LogMel

    lm = LogMel(fe)
    x = torch.from_numpy(np.stack([lm(c["audio"]) for c in _clips(4)]))
    with torch.no_grad():
        out = model.generate(x, language="sv", task="transcribe", max_new_tokens=6)
    assert [h.strip() for h in tok.batch_decode(out, skip_special_tokens=True)] == r["hyps"]

    # the loss is batch-size independent (token-weighted over the whole set)
    r1 = ev.evaluate_set(model, tok, fe, _clips(4), batch_size=1, max_new_tokens=6, bootstrap=200)
    assert r1["eval_loss"] == pytest.approx(r["eval_loss"], rel=1e-4)
    assert r1["hyps"] == r["hyps"]


def test_evaluate_set_batches_by_duration(tiny):
    """Batches hold clips of similar length (longest first within the sort window), every
    per-clip result comes back in stream order, and the scores equal those of unsorted
    batches; how it ran is recorded (device, dtype, batch, window, clips/s)."""
    model, fe, tok = tiny
    rng = np.random.default_rng(1)
    lengths = [4000, 40000, 8000, 36000, 12000, 22000, 16000, 18000]  # 2 s window: 2 over
    clips = [{"key": f"c{i}", "text": ["Hej.", "Åsa går hem nu.", "Tre.", "Det är bra."][i % 4],
              "audio": (0.1 * rng.standard_normal(n)).astype(np.float32)}
             for i, n in enumerate(lengths)]
    seen = []
    real_generate = model.generate

    def spy(x, **kw):
        seen.append(len(x))
        return real_generate(x, **kw)

    batches = list(ev._batches(iter(clips), 2, None, {}, sort_window=8))
    assert [pos for pos, _ in batches] == [[1, 3], [5, 7], [6, 4], [2, 0]]
    assert [len(c["audio"]) for _, b in batches for c in b] == sorted(lengths, reverse=True)
    # a window of 4: sorted within each run of 4 consecutive clips only
    assert [p for pos, _ in ev._batches(iter(clips), 2, None, {}, sort_window=4)
            for p in pos] == [1, 3, 2, 0, 5, 7, 6, 4]
    model.generate = spy
    try:
        r = ev.evaluate_set(model, tok, fe, clips, batch_size=2, max_new_tokens=5, bootstrap=50)
    finally:
        del model.generate
    assert seen == [2, 2, 2, 2]
    flat = ev.evaluate_set(model, tok, fe, clips, batch_size=2, max_new_tokens=5, bootstrap=50,
                           sort_window=1)
    assert r["keys"] == [c["key"] for c in clips] == flat["keys"]
    assert r["refs"] == [c["text"] for c in clips]
    assert r["hyps"] == flat["hyps"] and r["errors"] == flat["errors"]
    assert r["wer"] == flat["wer"] and r["eval_loss"] == pytest.approx(flat["eval_loss"])
    assert (r["sort_window"], flat["sort_window"], r["batch_size"]) == (32, 1, 2)
    assert r["device"] == "cpu" and r["dtype"] == "float32" and r["window_seconds"] == 2.0
    assert r["truncated_audio"] == 2 and r["clips_per_second"] > 0
    with pytest.raises(ValueError, match="sort_window"):
        ev.evaluate_set(model, tok, fe, clips, max_new_tokens=3, sort_window=0)


def test_evaluate_set_cap_and_default_length(tiny):
    model, fe, tok = tiny
    r = ev.evaluate_set(model, tok, fe, iter(_clips(4)), batch_size=2, max_samples=3,
                        max_new_tokens=3, bootstrap=50)
    assert r["n"] == 3 and r["capped"] is True
    r = ev.evaluate_set(model, tok, fe, _clips(4), batch_size=4, max_samples=4,
                        max_new_tokens=3, bootstrap=50)
    assert r["n"] == 4 and r["capped"] is False and r["n_total"] == 4
    # a stream already cut to the cap: `total` tells the set was larger
    r = ev.evaluate_set(model, tok, fe, _clips(2), max_new_tokens=3, bootstrap=50, total=10)
    assert r["capped"] is True and r["n_total"] == 10
    # default max_new_tokens: what the decoder's positions allow after the 4 prefix tokens
    r = ev.evaluate_set(model, tok, fe, _clips(2), batch_size=2, bootstrap=50)
    assert r["max_new_tokens"] == model.config.max_target_positions - 4
    assert math.isfinite(r["eval_loss"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        ev.evaluate_set(model, tok, fe, _clips(1), max_new_tokens=model.config.max_target_positions)
    with pytest.raises(ev.EvaluationError, match="no samples"):
        ev.evaluate_set(model, tok, fe, [], max_new_tokens=3)


# ---------------------------------------------------------------- report


def _entry(wer_errors, words, keys, loss, capped=False):
    errors = list(wer_errors)
    wer, lo, hi = ev.bootstrap_ci(errors, words, n=200, seed=0)
    return {"n": len(keys), "capped": capped, "n_total": 40 if capped else len(keys),
            "language": "sv", "task": "transcribe", "eval_loss": loss,
            "wer": wer, "wer_lo": lo, "wer_hi": hi, "nwer": wer * 0.8, "nwer_lo": lo * 0.8,
            "nwer_hi": hi * 0.8, "keys": keys, "errors": errors, "words": list(words),
            "nerrors": errors, "nwords": list(words)}


def _rows():
    rng = np.random.default_rng(5)
    words = rng.integers(4, 12, size=30)
    keys = [f"u{i}" for i in range(30)]
    base = rng.binomial(words, 0.6)
    good = rng.binomial(words, 0.1)
    same = base.copy()
    rng.shuffle(same)
    return [
        {"mix": "cv-only", "data": [{"set": "cv/train", "samples": 120, "hours": 0.2,
                                     "augmented": False}],
         "eval": {"cv/test": _entry(good, words, keys, 0.9),
                  "fleurs/test": _entry(good, words, keys, 1.1, capped=True)}},
        {"mix": "baseline", "baseline": True,
         "eval": {"cv/test": _entry(base, words, keys, 2.5),
                  "fleurs/test": _entry(base, words, keys, 2.7, capped=True)}},
        {"mix": "cv+aug", "data": [{"set": "cv/train", "samples": 120, "hours": 0.2},
                                   {"set": "cv-aug/train", "samples": 240, "hours": 0.4,
                                    "augmented": True}],
         # keys in another order: the paired bootstrap matches utterances by key
         "eval": {"cv/test": dict(_entry(same[::-1], words[::-1], keys[::-1], 2.4))}},
    ]


def test_write_report(tmp_path):
    from sweaug.ablate.report import CSV_COLUMNS, write_report

    notes = ["tiny model, smoke run", "fleurs/test capped at 30 samples"]
    paths = write_report(tmp_path, _rows(), None, ["cv/test", "fleurs/test"], notes)
    assert set(paths) == {"report.md", "results.csv", "wer.png"}
    assert all(p.parent == tmp_path and p.is_file() for p in paths.values())
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left

    rows = list(csv.DictReader(paths["results.csv"].open(encoding="utf-8")))
    assert list(rows[0]) == CSV_COLUMNS
    assert [(r["mix"], r["eval_set"]) for r in rows] == [
        ("baseline", "cv/test"), ("baseline", "fleurs/test"), ("cv-only", "cv/test"),
        ("cv-only", "fleurs/test"), ("cv+aug", "cv/test"), ("cv+aug", "fleurs/test")]
    by = {(r["mix"], r["eval_set"]): r for r in rows}
    assert by[("baseline", "cv/test")]["baseline"] == "true"
    # no reference named: the first trained mix is the reference, never the untrained baseline,
    # and the baseline's own lines carry no Δ
    assert all(r["reference"] == "cv-only" for r in rows)
    assert by[("baseline", "cv/test")]["diff"] == "" and by[("baseline", "cv/test")]["verdict"] == ""
    good = by[("cv-only", "cv/test")]
    assert good["diff"] == "" and good["verdict"] == ""  # the reference itself
    assert float(good["wer_lo"]) <= float(good["wer"]) <= float(good["wer_hi"])
    tie = by[("cv+aug", "cv/test")]  # as bad as the baseline: worse than cv-only
    assert float(tie["diff"]) > 0 and float(tie["diff_lo"]) > 0 and tie["verdict"] == "worse"
    assert tie["nverdict"] == "worse" and tie["n_paired"] == "30"
    assert by[("cv+aug", "fleurs/test")]["wer"] == ""  # not evaluated on that set
    assert by[("cv-only", "fleurs/test")]["capped"] == "true"
    assert "cv-aug/train 240 samples 0.40 h (augmented)" in tie["training"]
    assert "240 of 360 samples augmented" in tie["training"]

    md = paths["report.md"].read_text(encoding="utf-8")
    assert "| Model | Eval Loss | Eval WER |" in md
    assert "forces the language and the task" in md and "98 %" in md
    for es in ("cv/test", "fleurs/test"):
        section = md.split(f"## {es}\n")[1].split("\n## ")[0]
        table = [l for l in section.splitlines() if l.startswith("| ")][1:]  # rows, no header
        assert [l.split(" | ")[0] for l in table] == [
            "| baseline (no fine-tuning)", "| cv-only", "| cv+aug"]
    assert "(n=30 of 40)" in md.split("## fleurs/test")[1]
    assert "(n=30 of 40)" not in md.split("## fleurs/test")[0]
    assert "- tiny model, smoke run" in md
    assert "Δ is taken against `cv-only`, the first trained mix" in md
    cv = md.split("## cv/test\n")[1].split("\n## ")[0]
    assert "Δ WER vs cv-only" in cv
    base_line = next(l for l in cv.splitlines() if l.startswith("| baseline (no fine-tuning)"))
    assert base_line.rstrip().endswith("|  |  |") and "worse" not in base_line

    png = paths["wer.png"].read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in png[-12:]
    from PIL import Image

    Image.open(paths["wer.png"]).verify()
    assert b"Software" not in png and b"matplotlib" not in png

    # deterministic: the same inputs give the same bytes
    again = write_report(tmp_path / "again", _rows(), None, ["cv/test", "fleurs/test"], notes)
    for name in paths:
        if name != "report.md":  # the header names the folder
            assert again[name].read_bytes() == paths[name].read_bytes()


def test_write_report_without_baseline_and_explicit_reference(tmp_path):
    from sweaug.ablate.report import write_report

    rows = [r for r in _rows() if r["mix"] != "baseline"]
    paths = write_report(tmp_path, rows, "cv+aug", ["cv/test"], [])
    md = paths["report.md"].read_text(encoding="utf-8")
    table = [l for l in md.split("## cv/test\n")[1].splitlines() if l.startswith("| ")][1:]
    assert table[0].startswith("| baseline |") and "not evaluated" in table[0]
    assert len(table) == 3
    rows_csv = list(csv.DictReader(paths["results.csv"].open(encoding="utf-8")))
    assert {r["mix"]: r["verdict"] for r in rows_csv} == {"cv-only": "better", "cv+aug": ""}
    assert "Δ WER vs cv+aug" in md and "first trained mix" not in md
    with pytest.raises(ValueError, match="reference"):
        write_report(tmp_path, rows, "nope", ["cv/test"], [])
    with pytest.raises(ValueError, match="duplicate"):
        write_report(tmp_path, rows + rows[:1], None, ["cv/test"], [])


def test_shard_samples(tmp_path):
    import io
    import json

    import soundfile as sf

    from sweaug.build.shards import ShardWriter

    w = ShardWriter(lambda i: tmp_path / f"test-{i:06d}.tar", max_samples=2)
    for c in _clips(3):
        buf = io.BytesIO()
        sf.write(buf, c["audio"], 16000, format="FLAC", subtype="PCM_16")
        w.write(c["key"], [("flac", buf.getvalue()),
                           ("json", json.dumps({"text": c["text"]}).encode())])
    shards = [s.path for s in w.close()]
    assert len(shards) == 2
    got = list(ev.shard_samples(shards))
    assert [g["key"] for g in got] == ["clip0", "clip1", "clip2"]
    assert [g["text"] for g in got] == [c["text"] for c in _clips(3)]
    assert got[1]["audio"].dtype == np.float32
    np.testing.assert_allclose(got[1]["audio"], _clips(3)[1]["audio"], atol=1 / 32768)


def test_training_text_ablate_description():
    from sweaug.ablate.report import training_text

    row = {"mix": "mix1", "data": {
        "sets": {"cv/train": 1.0, "cv-aug/train": 1.0},
        "by_source": {"cv": {"samples": 300, "hours": 0.4, "augmented": 200}},
        "on_the_fly_augmentation": "recipes/augment/noisy.yaml"}}
    text = training_text(row)
    assert text.startswith("cv 300 samples 0.40 h (200 augmented); weights cv/train 50%")
    # every streamed sample is augmented on the fly: never "0 of N samples augmented"
    assert text.endswith("all 300 samples augmented on the fly (noisy.yaml), 200 of them "
                         "pre-augmented on disk")
    row["data"]["by_source"]["cv"]["augmented"] = 0
    assert training_text(row).endswith("all 300 samples augmented on the fly (noisy.yaml)")
    assert "0 of 300" not in training_text(row)
    row["data"]["on_the_fly_augmentation"] = None
    assert training_text(row).endswith("0 of 300 samples augmented")
    assert training_text({"mix": "baseline", "data": None}) == "none (no fine-tuning)"


def test_report_from_evaluate_set(tiny, tmp_path):
    from sweaug.ablate.report import write_report

    model, fe, tok = tiny
    r = ev.evaluate_set(model, tok, fe, _clips(4), batch_size=4, max_samples=3,
                        max_new_tokens=4, bootstrap=100)
    rows = [{"mix": "baseline", "data": None, "eval": {"cv/test": r}},
            {"mix": "same", "data": {"by_source": {"cv": {"samples": 3, "hours": 0.01,
                                                          "augmented": 0}}},
             "eval": {"cv/test": r}}]
    rows.append({"mix": "same2", "data": rows[1]["data"], "eval": {"cv/test": r}})
    paths = write_report(tmp_path, rows, None, ["cv/test"], [], bootstrap=100)
    got = {x["mix"]: x for x in csv.DictReader(paths["results.csv"].open(encoding="utf-8"))}
    assert got["same2"]["diff"] == "0.0" and got["same2"]["verdict"] == "no significant difference"
    assert got["same"]["reference"] == "same" and got["baseline"]["diff"] == ""
    assert got["same"]["n_total"] == "" and got["same"]["capped"] == "true"
    assert "(first 3)" in paths["report.md"].read_text(encoding="utf-8")


def test_reference_is_never_the_untrained_baseline(tmp_path):
    from sweaug.ablate.report import choose_reference, write_report

    rows = _rows()
    # naming the baseline as reference: the first trained mix instead, and the report says so
    assert choose_reference(rows, "baseline")[0] == "cv-only"
    paths = write_report(tmp_path, rows, "baseline", ["cv/test"], [])
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "is the untrained baseline: Δ is taken against `cv-only`" in md
    got = {x["mix"]: x for x in csv.DictReader(paths["results.csv"].open(encoding="utf-8"))}
    assert got["baseline"]["diff"] == "" and got["cv+aug"]["verdict"] == "worse"

    # one trained mix: no Δ columns at all (results.csv keeps them, empty)
    one = [r for r in rows if r["mix"] != "cv+aug"]
    paths = write_report(tmp_path / "one", one, None, ["cv/test"], [])
    md = paths["report.md"].read_text(encoding="utf-8")
    assert "Δ WER" not in md.split("## cv/test")[1] and "Only one trained mix (`cv-only`)" in md
    got = list(csv.DictReader(paths["results.csv"].open(encoding="utf-8")))
    assert all(x["reference"] == "" and x["diff"] == "" and x["verdict"] == "" for x in got)


def test_wer_png_scales_to_trained_mixes(tmp_path):
    """The untrained baseline (hundreds of percent) is a labelled marker at the top edge, not a
    bar that squashes the trained mixes; when it is near them it is a dashed line to scale."""
    from sweaug.ablate.report import _table, plot_data, wer_figure

    rows = _rows()
    far = copy.deepcopy(rows)
    far[1]["eval"]["cv/test"].update(wer=7.8, wer_lo=7.5, wer_hi=8.1)  # 780 %: the demo's case
    records = _table(far, "cv-only", ["cv/test"], 200, 0, 0.05)
    data = plot_data(records, ["baseline", "cv-only", "cv+aug"], ["cv/test"])
    assert data["bar_mixes"] == ["cv-only", "cv+aug"]
    wer = data["wer"]
    trained_top = max(hi for *_, y, lo, hi in wer["bars"])
    assert [b[-1] for b in wer["baseline"]] == ["marker"]
    assert trained_top < wer["ylim"][1] < 2 * trained_top  # scaled to the trained mixes
    fig = wer_figure(records, ["baseline", "cv-only", "cv+aug"], ["cv/test"], 0.05)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert any("baseline (untrained): 780.0 %" in t for t in texts)

    near = _table(rows, "cv-only", ["cv/test"], 200, 0, 0.05)  # baseline ≈ cv+aug
    data = plot_data(near, ["baseline", "cv-only", "cv+aug"], ["cv/test"])
    assert [b[-1] for b in data["wer"]["baseline"]] == ["line"]
    y = data["wer"]["baseline"][0][1]
    assert y < data["wer"]["ylim"][1]  # drawn to scale, inside the axis

    # only the baseline evaluated: its bars are drawn (nothing else to scale to)
    only = _table(rows[1:2], None, ["cv/test"], 200, 0, 0.05)
    data = plot_data(only, ["baseline"], ["cv/test"])
    assert data["bar_mixes"] == ["baseline"] and data["baseline_bars"]
