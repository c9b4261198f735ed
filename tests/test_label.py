"""`sweaug label` (issue #18) on the bundled sample, offline: the teacher is a tiny Whisper
trained here (seconds, on a CPU) until it transcribes the sample's clips, saved to a folder like
any checkpoint. A local folder of those clips with some transcripts made wrong on purpose
(another clip's sentence, the first word missing, a word added at the end) is what the
thresholds must find; a random tiny Whisper is the teacher that hallucinates."""
from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import sweaug

WRONG = {0: "other", 1: "other", 2: "other", 3: "head", 4: "head", 5: "tail", 6: "tail"}
LEAKS = 2  # cv test clips placed in the local folder's train rows


def _clips(shard: Path) -> list[dict]:
    import soundfile as sf

    from sweaug.build.shards import iter_samples

    out = []
    for key, files in iter_samples(shard):
        meta = json.loads(files["json"])
        x, _ = sf.read(io.BytesIO(files["flac"]), dtype="float32")
        out.append({"key": key, "audio": x, "text": meta["text"], "flac": files["flac"],
                    "speaker": meta["speaker"]})
    return out


def _wrong(text: str, how: str, other: str) -> str:
    words = text.rstrip(".").split()
    if how == "other":
        return other
    if how == "head":
        return " ".join(words[1:]) + "."
    return " ".join(words) + " tack så mycket."


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sample_cv, env):
    """Teachers (trained, random), a local corpus with known wrong transcripts, test shards."""
    base = tmp_path_factory.mktemp("label")
    train = _clips(sample_cv / "cv" / "train-000000.tar")
    test = _clips(sample_cv / "cv" / "test-000000.tar")
    from sweaug.train.whisper import tiny_teacher, tiny_whisper

    tiny_teacher([(c["audio"], c["text"]) for c in train + test], base / "teacher")

    for part in tiny_whisper(seconds=6.0, seed=1, d_model=64, layers=1, heads=2):
        part.save_pretrained(str(base / "random"))
    local = base / "local"
    (local / "audio").mkdir(parents=True)
    rows, truth = ["path\ttext\tspeaker\tsplit"], {}
    for i, c in enumerate(train + test[:LEAKS]):
        name = f"audio/clip{i:02d}.flac"
        (local / name).write_bytes(c["flac"])
        text = _wrong(c["text"], WRONG[i], train[(i + 9) % len(train)]["text"]) \
            if i in WRONG else (c["text"] if i < len(train) else "Okänd mening här.")
        rows.append(f"{name}\t{text}\t{c['speaker'][:12]}\ttrain")
        truth[name] = c["text"]
    (local / "metadata.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    corpus = base / "corpus"
    sweaug(env, "build", "--sources", "local", "--local-dir", local, "--out", corpus,
           "--no-progress")
    bare = base / "bare"  # the same clips, no text column: an unlabelled local folder
    shutil.copytree(local / "audio", bare / "audio")
    (bare / "metadata.tsv").write_text("path\tspeaker\n" + "".join(
        f"{r.split(chr(9))[0]}\t{r.split(chr(9))[2]}\n" for r in rows[1:]), encoding="utf-8")
    sweaug(env, "build", "--sources", "local", "--local-dir", bare, "--out", base / "bare-corpus",
           "--no-progress")
    evals = base / "eval"
    evals.mkdir()
    shutil.copy(sample_cv / "cv" / "test-000000.tar", evals / "test-000000.tar")
    return {"base": base, "teacher": base / "teacher", "random": base / "random",
            "corpus": corpus / "local", "bare": base / "bare-corpus" / "local", "eval": evals, "truth": truth, "env": env,
            "n": len(train) + LEAKS}


def _samples(folder: Path) -> dict[str, dict]:
    out = {}
    for shard in sorted(folder.glob("*.tar")):
        with tarfile.open(shard) as t:
            for m in t:
                if m.name.endswith(".json"):
                    meta = json.loads(t.extractfile(m).read())
                    out[meta["key"]] = meta
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _split(folder: Path) -> dict:
    return next(iter(_manifest(folder)["sources"].values()))["splits"]["train"]


def _shards(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tar"))}


@pytest.fixture(scope="module")
def annotated(lab):
    """Every sample labelled by the trained teacher, no thresholds (checks on)."""
    out = lab["base"] / "annotated"
    sweaug(lab["env"], "label", lab["corpus"], "--teacher", lab["teacher"], "--out", out,
           "--no-progress")
    return out


def test_teacher_records_score_the_wrong_transcripts(lab, annotated):
    s = _samples(annotated)
    assert len(s) == lab["n"] == _split(annotated)["input_samples"]
    by_row = {int(json.loads(m["extras"])["path"][len("audio/clip"):][:2]): m
              for m in s.values()}
    for i, m in by_row.items():
        t = m["teacher"]
        assert t["model"] == str(lab["teacher"]) and t["language"] == "sv", (i, t)
        assert set(t) >= {"model", "text", "wer", "cer", "head_cer", "tail_cer"}
    right = [m["teacher"]["wer"] for i, m in by_row.items() if i not in WRONG and i < lab["n"]
             - LEAKS]
    assert sum(w == 0 for w in right) >= len(right) - 2, right  # the teacher learnt its clips
    for i, how in WRONG.items():
        t = by_row[i]["teacher"]
        if how == "other":
            assert t["wer"] >= 0.5, t
        elif how == "head":
            assert t["head_cer"] > 0.3 and t["wer"] > 0, t
        else:
            assert t["tail_cer"] > 0.3 and t["wer"] > 0, t
    m = _manifest(annotated)
    assert m["teacher"]["settings"]["num_beams"] == 1 and m["teacher"]["settings"]["dtype"] == \
        "float32"
    assert _split(annotated)["drops"] == {}


def _expected_drops(records: list[dict], max_wer, max_edge) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in records:
        if max_wer is not None and t["wer"] > max_wer:
            out["teacher_wer"] = out.get("teacher_wer", 0) + 1
        elif max_edge is not None and max(t["head_cer"], t["tail_cer"]) > max_edge:
            out["teacher_edge_cer"] = out.get("teacher_edge_cer", 0) + 1
    return out


@pytest.mark.parametrize("max_wer,max_edge", [(0.3, None), (0.3, 0.3), (None, 0.3), (0.0, None)])
def test_thresholds_drop_what_the_records_say(lab, annotated, max_wer, max_edge):
    """Filtering the labelled folder again (no --teacher: no model runs) at several thresholds:
    each drop count is what the recorded scores say, and the wrong transcripts go."""
    out = lab["base"] / f"f-{max_wer}-{max_edge}"
    args = [a for k, v in (("--max-wer", max_wer), ("--max-edge-cer", max_edge))
            if v is not None for a in (k, str(v))]
    sweaug(lab["env"], "label", annotated, *args, "--out", out, "--no-progress")
    records = [m["teacher"] for m in _samples(annotated).values()]
    split = _split(out)
    assert split["drops"] == _expected_drops(records, max_wer, max_edge)
    assert split["transcribed"] == 0
    assert split["samples"] == lab["n"] - sum(split["drops"].values())
    kept = _samples(out)
    wrong = {k for k, m in _samples(annotated).items() if m["teacher"]["wer"] >= 0.5}
    assert len(wrong) >= 3 + LEAKS and not wrong & set(kept)


def test_label_with_thresholds_equals_label_then_filter_and_any_workers(lab, annotated):
    """Same bytes: labelling with the thresholds at once, with one or two workers, and
    filtering the labelled folder afterwards; a rerun reuses every shard."""
    env = lab["env"]
    once = lab["base"] / "once"
    flags = ["--max-wer", "0.3", "--max-edge-cer", "0.3", "--no-progress"]
    sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--out", once, *flags,
           "--shard-samples", "10")
    two = lab["base"] / "two"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--out", two, *flags,
           "--shard-samples", "10", "--workers", "2")
    after = lab["base"] / "after"
    sweaug(env, "label", annotated, "--out", after, *flags, "--shard-samples", "10")
    assert len(_shards(once)) >= 2 and _shards(once) == _shards(two) == _shards(after)
    before = {p: p.stat().st_mtime_ns for p in once.glob("*.tar")}
    p = sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--out", once, *flags,
               "--shard-samples", "10")
    assert {p: p.stat().st_mtime_ns for p in once.glob("*.tar")} == before
    assert "teacher_wer" in p.stdout


def test_random_teacher_hallucinations_are_counted_drops(lab):
    """A random Whisper loops and guesses the language: with the checks off every sample is
    kept with its record; with them on, each drop is what those records say."""
    env = lab["env"]
    off = lab["base"] / "random-off"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["random"], "--out", off,
           "--max-repeats", "0", "--no-language-check", "--no-progress")
    recs = [m["teacher"] for m in _samples(off).values()]
    assert len(recs) == lab["n"]
    on = lab["base"] / "random-on"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["random"], "--out", on, "--no-progress")
    from sweaug.train.evaluate import wer_normalize

    def expected(repeats: bool, min_prob: float) -> dict[str, int]:
        want: dict[str, int] = {}
        for t in recs:
            empty = not wer_normalize(t["text"]).split()
            why = ("teacher_empty" if empty else "teacher_repetitive"
                   if repeats and (t["repeats"] >= 4 or t["capped"]) else "teacher_language"
                   if t["language"] != "sv" and t["language_prob"] >= min_prob else None)
            if why:
                want[why] = want.get(why, 0) + 1
        return want

    want = expected(True, 0.5)
    assert _split(on)["drops"] == want and sum(want.values()) >= lab["n"] - 2
    assert any(r["capped"] or r["repeats"] >= 4 for r in recs)
    # a random model is never sure of a language (p ~ 1/100): only with P = 0 does it count
    assert max(r["language_prob"] for r in recs) < 0.5
    lang = lab["base"] / "random-lang"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["random"], "--out", lang,
           "--max-repeats", "0", "--min-language-prob", "0", "--no-progress")
    want = expected(False, 0.0)
    assert _split(lang)["drops"] == want and want.get("teacher_language", 0) >= 1


def test_unlabelled_pseudo_labels_agreement_and_leakage(lab):
    """--unlabelled: the teacher's text becomes the text (so wrong transcripts are replaced);
    a second teacher that agrees keeps all, a random one keeps none; a pseudo-label that is
    an evaluation sentence is a leak."""
    env = lab["env"]
    same = lab["base"] / "teacher-copy"
    if not same.exists():
        shutil.copytree(lab["teacher"], same)
    agree = lab["base"] / "agree"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--teacher2", same,
           "--unlabelled", "--max-wer", "0.2", "--eval", lab["eval"], "--out", agree,
           "--no-progress")
    split = _split(agree)
    assert split["drops"] == {"leak_sentence": LEAKS}
    assert split["pseudo_labelled"] == split["samples"] == lab["n"] - LEAKS
    s = _samples(agree)
    assert all(m["text_source"] == "teacher" and m["text"] == m["teacher"]["text"]
               and m["teacher"]["wer"] is None and m["teacher2"]["agreement"] == 0
               for m in s.values())
    fixed = sum(m["text"] == lab["truth"][json.loads(m["extras"])["path"]] for m in s.values())
    assert fixed >= split["samples"] - 2  # the wrong transcripts replaced by what was said
    bad = lab["base"] / "disagree"
    sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--teacher2", lab["random"],
           "--unlabelled", "--max-wer", "0.2", "--out", bad, "--no-progress")
    assert _split(bad)["samples"] == 0
    assert _split(bad)["drops"] == {"teacher_disagreement": lab["n"]}
    p = sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--unlabelled",
               "--max-wer", "0.2", "--out", lab["base"] / "x", check=False)
    assert p.returncode == 2 and "--teacher2" in p.stderr


def test_refusals_name_the_problem(lab, tmp_path):
    env = lab["env"]
    p = sweaug(env, "label", lab["corpus"], "--out", tmp_path / "a", check=False)
    assert p.returncode == 2 and "give --teacher" in p.stderr
    p = sweaug(env, "label", lab["corpus"], "--teacher", tmp_path / "nope", "--out",
               tmp_path / "b", check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr
    p = sweaug(env, "label", lab["corpus"], "--teacher", "tiny-random", "--out",
               tmp_path / "c", check=False)
    assert p.returncode == 2 and "not labels" in p.stderr
    p = sweaug(env, "label", lab["corpus"], "--teacher", lab["teacher"], "--max-wer", "-1",
               "--out", tmp_path / "d", check=False)
    assert p.returncode == 2 and "--max-wer" in p.stderr
    win = tmp_path / "win"
    sweaug(env, "windows", lab["corpus"], "--seconds", "5", "--out", win, "--no-progress")
    p = sweaug(env, "label", win, "--teacher", lab["teacher"], "--out", tmp_path / "e",
               check=False)
    assert p.returncode == 2 and "label the sentences" in p.stderr


def test_checks_units():
    from sweaug.label.checks import longest_run, scores

    assert longest_run("ja tack ja tack ja tack".split()) == 3
    assert longest_run("inte inte inte inte inte".split()) == 5
    assert longest_run("en två tre".split()) == 1 and longest_run([]) == 0
    s = scores("Vi gick vilse i den stora skogen.", "gick vilse i den stora skogen")
    assert s["wer"] == pytest.approx(1 / 7, abs=1e-6) and s["tail_cer"] == 0 and s["head_cer"] > 0
    assert scores("Klockan är 3.", "klockan är tre")["wer"] == 0


def test_ablate_compares_a_source_with_its_teacher_filtered_self(lab, annotated, tmp_path):
    """A labelled folder is a shard set like any other: `local` vs `local` filtered at WER 30 %,
    the same steps; the bundled teacher-filter recipe names the same kind of sets."""
    import yaml

    from conftest import ROOT, tiny_recipe

    env = lab["env"]
    corpus = lab["corpus"].parent
    filtered = corpus / "local-w30"
    sweaug(env, "label", annotated, "--max-wer", "0.3", "--out", filtered, "--no-progress")
    recipe = tmp_path / "tf.yaml"
    recipe.write_text(tiny_recipe(
        "tf", 13, "evaluation: {sets: [local/train], bootstrap: 100}\nreference: all\n"
                  "baseline: false\nmixes:\n  - name: all\n    data: {local/train: 1.0}\n"
                  "  - name: w30\n    data: {local-w30/train: 1.0}\n"))
    sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", tmp_path / "runs")
    res = {m: json.loads((tmp_path / "runs" / "tf" / m / "results.json").read_text())
           for m in ("all", "w30")}
    assert res["all"]["train"]["steps"] == res["w30"]["train"]["steps"] == 4
    kept = _split(filtered)["samples"]
    assert kept < lab["n"]
    bundled = yaml.safe_load((ROOT / "sweaug" / "recipes" / "ablation" / "teacher-filter.yaml")
                             .read_text())
    assert [m["data"] for m in bundled["mixes"]] == [{"rixvox/train": 1.0},
                                                     {"rixvox-kb-w10/train": 1.0}]
    assert "max_steps" in bundled["training"]


def test_device_and_dtype_choice(lab, monkeypatch):
    """fp32 on a CPU; on CUDA bf16 where the GPU has it (A100/H100), else fp16 (a T4); the
    choice is in the recorded settings and so in every job's input hash."""
    import torch

    from sweaug.label.teacher import resolve_teacher
    from sweaug.records import ConfigError

    cpu = resolve_teacher(str(lab["teacher"]), device="cpu")
    assert (cpu.device, cpu.dtype) == ("cpu", "float32")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    for bf16, want in ((True, "bfloat16"), (False, "float16")):
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda bf16=bf16: bf16)
        spec = resolve_teacher(str(lab["teacher"]))
        assert (spec.device, spec.dtype) == ("cuda", want)
        assert spec.settings()["dtype"] == want and spec.sha256 != cpu.sha256
    with pytest.raises(ConfigError, match="float16 on a CPU"):
        resolve_teacher(str(lab["teacher"]), device="cpu", dtype="float16")


from test_ray import needs_ray, ray_env  # noqa: E402,F401  (the module's local Ray)


@needs_ray
def test_label_on_ray_gives_the_local_bytes(lab, ray_env):  # noqa: F811 (the fixture)
    e, address = ray_env
    env = dict(lab["env"], **{k: v for k, v in e.items() if k.startswith("RAY")})
    flags = ["--teacher", str(lab["teacher"]), "--max-wer", "0.3", "--shard-samples", "10",
             "--no-progress"]
    local, ray = lab["base"] / "ray-ref", lab["base"] / "ray-out"
    sweaug(env, "label", lab["corpus"], "--out", local, *flags)
    sweaug(env, "label", lab["corpus"], "--out", ray, *flags, "--executor", "ray",
           "--ray-address", address)
    assert len(_shards(local)) >= 2 and _shards(ray) == _shards(local)


def test_an_unlabelled_local_folder_is_pseudo_labelled_and_then_trainable(lab, tmp_path):
    """A local folder built without a text column: refused by ablate until labelled; the
    teacher's texts become its transcripts (what was said, not the wrong metadata), with no
    flag left, and ablate then trains on it."""
    from conftest import tiny_recipe

    env = lab["env"]
    recipe = tmp_path / "u.yaml"
    recipe.write_text(tiny_recipe("u", 13, "evaluation: {sets: [local/train]}\nbaseline: false\n"
                                           "mixes:\n  - name: u\n    data: {local/train: 1.0}\n"))
    p = sweaug(env, "ablate", recipe, "--corpus", lab["bare"].parent, "--out", tmp_path / "r",
               "--dry-run", check=False)
    assert p.returncode == 2 and "label it first" in p.stderr
    out = lab["bare"].parent / "local-kb"  # beside the build, like any derived folder
    sweaug(env, "label", lab["bare"], "--teacher", lab["teacher"], "--eval", lab["eval"],
           "--out", out, "--no-progress")
    split = _split(out)
    assert split["drops"] == {"leak_sentence": LEAKS}
    assert split["pseudo_labelled"] == split["samples"] == lab["n"] - LEAKS
    s = _samples(out)
    assert not any("unlabelled" in m for m in s.values())
    leaks = (out / "leakage.tsv").read_text().splitlines()
    assert len(leaks) == 1 + LEAKS and all("\tcv/test/" in row for row in leaks[1:])
    right = sum(m["text"] == lab["truth"][json.loads(m["extras"])["path"]] for m in s.values())
    assert right >= split["samples"] - 2
    recipe.write_text(recipe.read_text().replace("local/train", "local-kb/train"))
    sweaug(env, "ablate", recipe, "--corpus", out.parent, "--out", tmp_path / "r")
    res = json.loads((tmp_path / "r" / "u" / "u" / "results.json").read_text())
    assert res["train"]["steps"] == 4


def test_language_check_keeps_what_whisper_hesitates_over():
    from sweaug.label.checks import Thresholds, verdict

    rec = {"text": "Vi gick vilse i skogen.", "wer": 0.0, "cer": 0.0, "head_cer": 0.0,
           "tail_cer": 0.0, "repeats": 1, "capped": 0, "over_window": False}
    ref = "Vi gick vilse i skogen."
    t = Thresholds(max_wer=0.1)
    assert verdict(t, {**rec, "language": "no", "language_prob": 0.4}, ref, "sv") is None
    assert verdict(t, {**rec, "language": "no", "language_prob": 0.6}, ref, "sv")[0] == \
        "teacher_language"
    assert verdict(Thresholds(language_check=False),
                   {**rec, "language": "en", "language_prob": 0.99}, ref, "sv") is None
    with pytest.raises(Exception, match="min-language-prob"):
        Thresholds(min_language_prob=1.5)


def test_teacher_and_teacher2_stay_loaded_across_shards(monkeypatch):
    """Each shard job runs the teacher, then the second teacher: both stay in memory (a large
    model loaded again per shard would cost more than the shard); a third evicts the oldest."""
    from sweaug.label.teacher import Teacher

    made = []
    monkeypatch.setattr(Teacher, "_loaded", {})
    monkeypatch.setattr(Teacher, "__init__", lambda self, spec: made.append(spec.sha256))

    class Spec:
        def __init__(self, sha):
            self.sha256 = sha

    a, b, c = Spec("a"), Spec("b"), Spec("c")
    for _ in range(3):  # three shards, two teachers each
        Teacher.load(a)
        Teacher.load(b)
    assert made == ["a", "b"]
    Teacher.load(c)
    Teacher.load(b)
    Teacher.load(a)
    assert made == ["a", "b", "c", "a"]
