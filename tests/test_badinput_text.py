"""Issue #14, text cases: number spellings the leakage guard must see as one sentence (19),
``extras`` that survive loading several sources' shards together (18), and comparison signs
that are text, not annotations (20c)."""
from __future__ import annotations

import glob
import importlib
import json
import random
import shutil
import tarfile
from pathlib import Path

import pytest
from num2words import num2words

from conftest import CV12, FIX, sweaug
from sweaug.sources import REGISTRY
from sweaug.build.text import normalized_text, rejected_chars, sv_number_value, target_text


def _replace(path: Path, old: str, new: str) -> None:
    """Replace one sentence in a TSV as bytes (the CV fixture has a deliberately non-UTF-8 row)."""
    data = path.read_bytes()
    assert data.count(old.encode()) == 1, (path, old)
    path.write_bytes(data.replace(old.encode(), new.encode()))


def _samples(out: Path) -> dict[str, dict]:
    found = {}
    for shard in sorted(out.glob("*/*.tar")):
        with tarfile.open(shard) as t:
            for m in t:
                if m.name.endswith(".json"):
                    found[m.name[:-5]] = json.loads(t.extractfile(m).read())
    return found


@pytest.fixture(scope="module")
def mixed(tmp_path_factory, env):
    """cv + fleurs + local in one build, from the committed fixtures with a few sentences
    changed: a CV train row reads FLEURS dev's "1987" as a year, another CV train row says
    "hundra" where CV test says "etthundra", and local rows hold comparison signs and tags."""
    base = tmp_path_factory.mktemp("mixed")
    cv = base / "cv"
    shutil.copytree(CV12, cv)
    _replace(cv / "sv-SE" / "train.tsv", "Vår granne har en röd stuga.",
             "Hon föddes år nittonhundraåttiosju i Umeå.")
    _replace(cv / "sv-SE" / "train.tsv", "Kan du stänga fönstret, tack?",
             "Det kostar hundra kronor.")
    _replace(cv / "sv-SE" / "test.tsv", "Hon läser tidningen till frukost.",
             "Det kostar etthundra kronor.")
    local = base / "local"
    shutil.copytree(FIX / "local" / "audio", local / "audio")
    (local / "metadata.tsv").write_text(
        "path\ttext\tspeaker\tsplit\n"
        "audio/a1.wav\tVärdet är < 5 och > 2.\tanna\ttrain\n"
        "audio/a2.flac\tOm x < 3 och y > 4 gäller det.\tbertil\ttest\n"
        "audio/a3.wav\tHej <noise> du <UNK> där.\tcecilia\ttrain\n", encoding="utf-8")
    out = base / "corpus"
    sweaug(env, "build", "--sources", "cv,fleurs,local", "--cv-dir", cv, "--fleurs-dir",
           FIX / "fleurs", "--local-dir", local, "--out", out, "--no-progress")
    return out


# -- 19: number words and digits normalize alike ------------------------------------------------

@pytest.mark.parametrize("spellings", [
    ["hundra", "etthundra", "100", "ett hundra"],
    ["tusen", "ettusen", "etttusen", "1000", "1 000"],
    ["nittonhundranittio", "ettusenniohundranittio", "1990"],
    ["nittonhundraåttiosju", "1987"],
    ["tvåtusentjugofyra", "2024"],
    ["etthundratjugo", "120", "ett hundra tjugo", "hundratjugo"],
    ["två miljoner", "tvåmiljoner", "2000000", "2 000 000", "2 miljoner"],
    ["en miljon", "1000000", "1 miljon"],
    ["fyrtio", "förtio", "40"],
    ["tjugoen", "tjugoett", "21"],
    ["arton", "aderton", "18"],
    ["tjugohundra", "2000"],
])
def test_number_spellings_normalize_alike(spellings):
    forms = {normalized_text(f"Det var {s} i år.") for s in spellings}
    assert len(forms) == 1, forms
    (form,) = forms
    assert not any(ch.isdigit() for ch in form)  # words, readable as a WER reference


@pytest.mark.parametrize("raw, expected", [
    ("Det kostar hundra kronor", "det kostar etthundra kronor"),
    ("Hon föddes nittonhundranittio", "hon föddes etttusenniohundranittio"),
    ("en bil och ett hus", "en bil och ett hus"),  # "en"/"ett" alone are articles or one
    ("ett två tre kör", "ett två tre kör"),  # three numbers, not 123
    ("han kom tredje, hon första", "han kom tredje hon första"),  # ordinals stay
    ("flera miljoner kronor", "flera miljoner kronor"),  # no count: not a number
    ("hundratals och tusentals", "hundratals och tusentals"),
    ("sex sju åtta", "sex sju åtta"),
    ("Ring 070 123", "ring noll sjuttio etthundratjugotre"),
    ("Räntan är 3,5 %", "räntan är tre komma fem procent"),
    ("år 2019 200 personer", "år tvåtusennitton tvåhundra personer"),
    ("tvåtusen tjugofyra", "tvåtusen tjugofyra"),  # two numbers, as "2000 24" (no bare scale)
])
def test_other_words_are_left_alone(raw, expected):
    assert normalized_text(raw) == expected


def test_other_languages_keep_their_number_words():
    assert normalized_text("hundra", language="fi") == "hundra"
    assert normalized_text("sata 100", language="fi") == "sata sata"


def test_parser_reads_back_every_num2words_spelling():
    rnd = random.Random(14)
    numbers = [*range(0, 2100), *(rnd.randrange(10 ** e) for e in range(4, 13) for _ in range(300))]
    for n in numbers:
        word = num2words(n, lang="sv").replace(" ", "").replace("-", "")
        assert sv_number_value(word) == n, (n, word)
    for word in ("", "en", "nolltre", "tjugonoll", "tolvtre", "tusentusen", "miljoner",
                 "hundraen", "tiotal", "femte", "sexa"):
        assert sv_number_value(word) is None, word


def test_normalized_text_stays_idempotent_on_number_phrases():
    words = ("noll ett en två tre sju elva tolv nitton tjugo tjugoen fyrtio nittio hundra tusen "
             "miljon miljoner miljard etthundra nittonhundra ettusen tvåtusen 7 19 100 1990 "
             "2000000 3,5 komma och kronor första").split()
    rnd = random.Random(19)
    for _ in range(3000):
        phrase = " ".join(rnd.choice(words) for _ in range(rnd.randint(1, 6)))
        once = normalized_text(phrase)
        assert normalized_text(once) == once, phrase


def test_guard_catches_number_spellings_within_and_across_sources(mixed):
    m = json.loads((mixed / "manifest.json").read_text())
    drops = {(d["item"], d["reason"], d["detail"]) for d in m["drops"] if d["source"] == "cv"}
    leaks = (mixed / "leakage.tsv").read_text()
    fleurs_1987 = next(s for s in _samples(mixed).values() if "1987" in s["text"])
    assert fleurs_1987["source"] == "fleurs" and fleurs_1987["split"] == "validation"
    year = ("common_voice_sv-SE_36106072", "leak_sentence",
            f"fleurs/validation/{fleurs_1987['key']}")
    assert year in drops and "Hon föddes år nittonhundraåttiosju i Umeå." in leaks
    hundred = ("common_voice_sv-SE_36103884", "leak_sentence",
               "cv/test/cv_common_voice_sv-SE_36133333")
    assert hundred in drops and "Det kostar hundra kronor." in leaks
    assert m["normalizer_version"] == "sv-2"


def test_eval_shards_of_an_older_normalizer_still_guard(mixed, tmp_path, env):
    """An --eval set built by normalizer sv-1 stores "det kostar hundra kronor"; the guard
    normalizes its `text` again, so a training "Det kostar 100 kronor." still leaks."""
    from sweaug.build.shards import ShardWriter, iter_samples, sample_json

    (src,) = sorted((mixed / "cv").glob("test-*.tar"))
    old = tmp_path / "old-eval"
    w = ShardWriter(lambda i: old / "test-000000.tar")
    for key, files in iter_samples(src):
        meta = json.loads(files["json"])
        if meta["text"] == "Det kostar etthundra kronor.":
            meta.update(text="Det kostar hundra kronor.", text_raw="Det kostar hundra kronor.",
                        text_normalized="det kostar hundra kronor")  # as sv-1 wrote it
        w.write(key, [("flac", files["flac"]), ("json", sample_json(meta))])
    w.close()
    local = tmp_path / "local"
    shutil.copytree(FIX / "local" / "audio", local / "audio")
    (local / "metadata.tsv").write_text("path\ttext\tspeaker\naudio/a1.wav\tDet kostar 100 kronor."
                                        "\tnisse\n", encoding="utf-8")
    out = tmp_path / "out"
    sweaug(env, "build", "--sources", "local", "--local-dir", local, "--eval", old, "--out", out,
           "--no-progress")
    (drop,) = json.loads((out / "manifest.json").read_text())["drops"]
    assert drop["reason"] == "leak_sentence" and drop["detail"].startswith("cv/test/")


def test_eval_shard_without_sweaug_json_is_a_clear_error(tmp_path, env):
    from sweaug.build.shards import ShardWriter

    bad = tmp_path / "eval"
    w = ShardWriter(lambda i: bad / "test-000000.tar")
    w.write("x1", [("json", b'{"key": "x1"}')])
    w.close()
    p = sweaug(env, "build", "--sources", "local", "--local-dir", FIX / "local", "--eval", bad,
               "--out", tmp_path / "out", "--no-progress", check=False)
    assert p.returncode == 2 and "test-000000.tar" in p.stderr and "'x1'" in p.stderr
    assert "Traceback" not in p.stderr


# -- 18: extras survive one load_dataset over several sources -------------------------------------

def test_extras_is_a_json_string():
    from sweaug.build.shards import extras_json, sample_json

    assert extras_json({"b": "1", "a": "Åsa"}) == '{"a":"Åsa","b":"1"}'
    # a sample of a corpus built when extras was a struct is written in today's schema
    assert json.loads(sample_json({"key": "k", "extras": {"b": "1", "a": "Åsa"}})) == \
        {"key": "k", "extras": '{"a":"Åsa","b":"1"}'}
    assert json.loads(sample_json({"key": "k", "extras": '{"a":"1"}'}))["extras"] == '{"a":"1"}'


def test_one_load_dataset_over_several_sources_keeps_every_extras(mixed, tmp_path):
    from datasets import load_dataset

    fields = {}
    for name in ("cv", "fleurs", "local"):
        module, cls = REGISTRY[name].split(":")
        fields[name] = set(getattr(importlib.import_module(module), cls).extras_fields)
    files = [f for name in ("cv", "fleurs", "local")  # cv first: its schema is seen first
             for f in sorted(glob.glob(str(mixed / name / "*.tar")))]
    ds = load_dataset("webdataset", data_files={"train": files}, split="train",
                      cache_dir=str(tmp_path / "hf"))
    on_disk = _samples(mixed)
    assert ds.num_rows == len(on_disk)
    seen = set()
    for row in ds:
        meta = row["json"]
        extras = json.loads(meta["extras"])
        assert set(extras) == fields[meta["source"]], meta["key"]
        assert extras == json.loads(on_disk[meta["key"]]["extras"])
        assert all(isinstance(v, str) for v in extras.values())
        seen.add(meta["source"])
    assert seen == {"cv", "fleurs", "local"}
    fleurs = next(json.loads(s["extras"]) for s in on_disk.values() if s["source"] == "fleurs")
    assert fleurs["fleurs_transcription"]  # the key a struct column inferred from cv dropped


# -- 20c: comparison signs are text ------------------------------------------------------------

@pytest.mark.parametrize("raw, expected", [
    ("värdet är < 5 och > 2", "värdet är < 5 och > 2"),
    ("om x<3 och y>4", "om x<3 och y>4"),
    ("a < b", "a < b"),
    ("pil -> höger", "pil -> höger"),
    ("<5> x", "<5> x"),
    ("hej <noise> du <UNK> där", "hej du där"),
    ("<sil> ja </s>", "ja"),
    ("<v-noise> ok <laugh>", "ok"),
    ("<skratt> ja", "ja"),
])
def test_only_tags_are_removed_between_angle_brackets(raw, expected):
    assert target_text(raw) == expected


def test_comparison_signs_are_a_counted_drop_in_training_and_kept_in_evaluation(mixed):
    m = json.loads((mixed / "manifest.json").read_text())
    drops = {(d["item"], d["reason"], d["detail"]) for d in m["drops"] if d["source"] == "local"}
    assert ("audio/a1", "rejected_chars", "<>") in drops
    assert m["sources"]["local"]["splits"]["train"]["drops"]["rejected_chars"] == 1
    texts = {s["split"]: s for s in _samples(mixed).values() if s["source"] == "local"}
    assert texts["test"]["text"] == "Om x < 3 och y > 4 gäller det."  # nothing lost
    assert texts["test"]["text_normalized"] == "om x tre och y fyra gäller det"
    assert texts["train"]["text"] == "Hej du där."
    assert rejected_chars(texts["test"]["text"]) == "<>"
