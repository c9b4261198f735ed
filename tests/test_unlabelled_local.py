"""`sweaug build --sources local` of a folder whose metadata has no text (path, speaker, split
only): every clip is kept with text "" and ``"unlabelled": true`` (samples and the manifest's
source entry), the text filters skip it while the audio bounds apply, and the stages that need
transcripts (ablate, windows) refuse the folder up front, pointing to `sweaug label`."""
from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import FIX, ROOT, sweaug

# (clip, speaker, split): distinct speakers per split, so that no row is a leak_speaker drop
ROWS = [("audio/a1.wav", "anna", "test"), ("audio/a2.flac", "bertil", "validation"),
        ("audio/a3.wav", "cecilia", "train"), ("audio/a4.ogg", "cecilia", "train"),
        ("audio/a5.mp3", "david", ""), ("audio/clip.v2.final.wav", "david", "train")]
SPLITS = {"train": 4, "validation": 1, "test": 1}
SAMPLE_KEYS = {"key", "source", "source_id", "split", "language", "text", "text_raw",
               "text_normalized", "speaker", "gender", "duration", "num_samples", "sample_rate",
               "source_sample_rate", "source_channels", "rms_dbfs", "clip_fraction", "extras"}


def write_metadata(folder: Path, fmt: str, rows: list[dict]) -> None:
    """``rows`` as ``metadata.<fmt>``; TSV/CSV columns are the first row's keys."""
    cols = list(rows[0])
    if fmt == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        sep = "\t" if fmt == "tsv" else ","
        text = "\n".join([sep.join(cols)] + [sep.join(r[c] for c in cols) for r in rows]) + "\n"
    (folder / f"metadata.{fmt}").write_text(text, encoding="utf-8")


def local_folder(root: Path, fmt: str, rows: list[dict]) -> Path:
    d = root / "local"
    shutil.copytree(FIX / "local" / "audio", d / "audio")
    write_metadata(d, fmt, rows)
    return d


def unlabelled_rows() -> list[dict]:
    return [{"path": p, "speaker": s, "split": sp} for p, s, sp in ROWS]


def build(env, folder: Path, out: Path, *flags):
    return sweaug(env, "build", "--sources", "local", "--local-dir", folder, "--out", out,
                  "--no-progress", *flags)


def samples(out: Path, folder: str = "local") -> list[dict]:
    found = []
    for shard in sorted((out / folder).glob("*.tar")):
        with tarfile.open(shard) as t:
            found += [json.loads(t.extractfile(m).read()) for m in t if m.name.endswith(".json")]
    return found


def manifest(path: Path) -> dict:
    return json.loads((path / "manifest.json").read_text())


def refusal(folder: Path) -> str:
    return (f"{folder} is unlabelled (built from a local folder without a text column): "
            f"label it first with `sweaug label {folder} --teacher MODEL --out DIR`")


@pytest.fixture(scope="module")
def unlabelled_corpus(tmp_path_factory, env) -> Path:
    """A TSV unlabelled folder built once: the refusal tests only read it."""
    root = tmp_path_factory.mktemp("unlabelled")
    out = root / "corpus"
    build(env, local_folder(root, "tsv", unlabelled_rows()), out)
    return out


@pytest.mark.parametrize("fmt", ["tsv", "csv", "jsonl"])
def test_every_clip_is_kept_unlabelled_with_empty_text(tmp_path, env, fmt):
    out = tmp_path / "out"
    build(env, local_folder(tmp_path, fmt, unlabelled_rows()), out)
    got = samples(out)
    assert sorted(s["source_id"] for s in got) == sorted(p.rsplit(".", 1)[0] for p, _, _ in ROWS)
    for s in got:
        assert set(s) == SAMPLE_KEYS | {"unlabelled"}
        assert s["unlabelled"] is True
        assert (s["text"], s["text_raw"], s["text_normalized"]) == ("", "", "")
    assert {s["source_id"]: s["speaker"] for s in got}["audio/a2"] == "bertil"
    m = manifest(out)
    src = m["sources"]["local"]
    assert src["unlabelled"] is True
    assert {sp: s["samples"] for sp, s in src["splits"].items()} == SPLITS
    assert m["drops"] == [] and m["leakage"]["count"] == 0


def test_duration_filters_still_apply_to_unlabelled_training_clips(tmp_path, env):
    """No characters-per-second bound (there is no text), but the duration bounds stay:
    the 2.77 s training clip is too long for --max-duration 2.5; the 2.06 s validation clip is
    kept (evaluation splits are not filtered)."""
    out = tmp_path / "out"
    build(env, local_folder(tmp_path, "tsv", unlabelled_rows()), out, "--max-duration", "2.5")
    m = manifest(out)
    assert [(d["item"], d["reason"]) for d in m["drops"]] == [("audio/clip.v2.final", "too_long")]
    assert m["sources"]["local"]["splits"]["train"]["samples"] == 3
    assert m["sources"]["local"]["splits"]["validation"]["samples"] == 1


def test_unlabelled_speakers_are_guarded_sentences_are_not(tmp_path, env):
    """An unlabelled evaluation row registers its speaker (a training row of the same speaker
    is a leak_speaker drop) but no sentence: an empty text is no sentence."""
    from sweaug.build.leakage import LeakageGuard
    from sweaug.build.pipeline import _accepted
    from sweaug.sources import SourceOptions, get_source

    rows = unlabelled_rows()
    rows[4]["speaker"] = "anna"  # a5, a training row, by the test split's speaker
    folder = local_folder(tmp_path, "tsv", rows)
    out = tmp_path / "out"
    build(env, folder, out)
    m = manifest(out)
    assert [(d["item"], d["reason"], d["split"]) for d in m["drops"]] == [
        ("audio/a5", "leak_speaker", "train")]

    src = get_source("local", SourceOptions(path=folder))
    guard, drops, leaks = LeakageGuard(), [], []
    kept = list(_accepted(src, "test", guard, drops, leaks))
    assert [(u.source_id, u.unlabelled, u.normalized) for u in kept] == [("audio/a1", True, "")]
    assert guard.sentence_count == 0 and drops == []
    assert guard._speakers == {("local", "anna"): f"local/test/{kept[0].key}"}


def test_a_labelled_folder_is_unchanged(tmp_path, env):
    """The fixture folder (path, text, speaker): no flag anywhere, every text kept; a row with
    an empty text is still an empty_text drop."""
    out = tmp_path / "out"
    build(env, FIX / "local", out)
    got = samples(out)
    assert len(got) == 6 and all(set(s) == SAMPLE_KEYS for s in got)
    assert {s["source_id"]: s["text"] for s in got}["audio/a2"] == \
        "Fisken nappade precis vid skymningen."
    assert "unlabelled" not in manifest(out)["sources"]["local"]

    rows = [{"path": p, "text": f"Mening nummer {i}.", "speaker": s} for i, (p, s, _) in
            enumerate(ROWS)]
    rows[1]["text"] = ""
    out2 = tmp_path / "out2"
    build(env, local_folder(tmp_path / "empty", "tsv", rows), out2)
    m = manifest(out2)
    assert [(d["item"], d["reason"]) for d in m["drops"]] == [("audio/a2", "empty_text")]
    assert "unlabelled" not in m["sources"]["local"]
    assert not any("unlabelled" in s for s in samples(out2))


def test_mixed_jsonl_drops_the_rows_without_text(tmp_path, env):
    """Some rows have "text": the file is labelled, a row without the key is missing_fields."""
    rows = [{"path": p, "text": f"Mening nummer {i}.", "speaker": s} for i, (p, s, _) in
            enumerate(ROWS)]
    del rows[2]["text"], rows[4]["text"]
    out = tmp_path / "out"
    build(env, local_folder(tmp_path, "jsonl", rows), out)
    m = manifest(out)
    assert [(d["item"], d["reason"], d["detail"]) for d in m["drops"]] == [
        ("metadata.jsonl:3", "missing_fields", "needs path, text"),
        ("metadata.jsonl:5", "missing_fields", "needs path, text")]
    assert "unlabelled" not in m["sources"]["local"]
    got = samples(out)
    assert sorted(s["source_id"] for s in got) == [
        "audio/a1", "audio/a2", "audio/a4", "audio/clip.v2.final"]
    assert not any("unlabelled" in s for s in got)


def test_ablate_refuses_an_unlabelled_set(unlabelled_corpus, tmp_path, env):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: x\nmixes:\n  - {name: a, data: {local/train: 1}}\n"
                      "evaluation: {sets: [local/test]}\n")
    p = sweaug(env, "ablate", recipe, "--corpus", unlabelled_corpus, "--out", tmp_path / "runs",
               "--dry-run", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert f"shard set 'local/test': {refusal(unlabelled_corpus / 'local')}" in p.stderr
    assert not (tmp_path / "runs").exists()


def test_windows_refuses_an_unlabelled_folder(unlabelled_corpus, tmp_path, env):
    folder = unlabelled_corpus / "local"
    p = sweaug(env, "windows", folder, "--out", tmp_path / "win", "--no-progress", check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert refusal(folder) in p.stderr
    assert not (tmp_path / "win").exists()


def test_augment_keeps_the_flag_and_the_copy_is_refused_too(unlabelled_corpus, tmp_path, env):
    aug = unlabelled_corpus / "local-aug"
    try:
        sweaug(env, "augment", unlabelled_corpus / "local", "--recipe",
               ROOT / "recipes" / "augment" / "default.yaml", "--out", aug, "--no-progress")
        got = samples(aug, ".")
        assert len(got) == 6 and all(s["unlabelled"] is True and s["text"] == "" for s in got)
        assert manifest(aug)["sources"]["local-aug"]["unlabelled"] is True
        p = sweaug(env, "windows", aug, "--out", tmp_path / "win", "--no-progress", check=False)
        assert p.returncode == 2 and refusal(aug) in p.stderr
        recipe = tmp_path / "r.yaml"
        recipe.write_text("name: x\nmixes:\n  - {name: a, data: {local-aug/train: 1}}\n"
                          "evaluation: {sets: [local/test]}\n")
        p = sweaug(env, "ablate", recipe, "--corpus", unlabelled_corpus, "--out",
                   tmp_path / "runs", "--dry-run", check=False)
        assert p.returncode == 2 and f"shard set 'local-aug/train': {refusal(aug)}" in p.stderr
    finally:
        shutil.rmtree(aug, ignore_errors=True)  # the module's corpus stays as built
