"""`sweaug build --split-by-speaker`: a seeded, speaker-disjoint split of the local rows that
have no split, and the warning when a build leaves nothing to evaluate on (issue #19, point 4)."""
from __future__ import annotations

import itertools
import json
import random
import shutil
import tarfile
from pathlib import Path

import pytest

from conftest import FIX, sweaug, tree_bytes

from sweaug.records import ConfigError
from sweaug.sources.speaker_split import assign_speakers, parse_fractions

AUDIO = sorted((FIX / "local" / "audio").iterdir())
ROWS_PER_SPEAKER = [1, 4, 2, 3, 1, 2, 4, 1, 3, 2, 1, 2]  # 12 speakers, 26 rows


def local_folder(root: Path, rows: list[tuple[str, str]], with_split: bool = False) -> Path:
    """A local-source folder: one copy of a fixture clip and one distinct sentence per row
    (``(speaker, split)``; no ``split`` column unless ``with_split``)."""
    (root / "audio").mkdir(parents=True)
    lines = ["path\ttext\tspeaker" + ("\tsplit" if with_split else "")]
    for i, ((speaker, split), clip) in enumerate(zip(rows, itertools.cycle(AUDIO))):
        name = f"audio/r{i:02d}{clip.suffix}"
        shutil.copy(clip, root / name)
        lines.append(f"{name}\tMening nummer {i + 1}.\t{speaker}" + (f"\t{split}" * with_split))
    (root / "metadata.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def unsplit_rows() -> list[tuple[str, str]]:
    rows = [(f"spk{s:02d}", "") for s, n in enumerate(ROWS_PER_SPEAKER) for _ in range(n)]
    return rows + [("", "")] * 3  # rows without a speaker: each is its own speaker


def samples(out: Path) -> list[dict]:
    found = []
    for shard in sorted(out.glob("local/*.tar")):
        with tarfile.open(shard) as t:
            found += [json.loads(t.extractfile(m).read()) for m in t if m.name.endswith(".json")]
    return found


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def build(env, folder: Path, out: Path, *flags: str):
    return sweaug(env, "build", "--sources", "local", "--local-dir", folder, "--out", out,
                  "--shard-samples", "3", "--no-progress", *flags)


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return local_folder(tmp_path_factory.mktemp("in") / "local", unsplit_rows())


@pytest.fixture(scope="module")
def split_builds(folder, tmp_path_factory, env) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("out")
    outs = {}
    for name, flags in {"w1": ("--workers", "1"), "w2": ("--workers", "2"),
                        "seed7": ("--split-seed", "7")}.items():
        outs[name] = base / name
        build(env, folder, outs[name], "--split-by-speaker", "0.8,0.1,0.1", *flags)
    return outs


def split_of_speaker(out: Path) -> dict[str, set[str]]:
    by = {}
    for s in samples(out):
        by.setdefault(s["speaker"] or s["key"], set()).add(s["split"])
    return by


# ---- the assignment itself ------------------------------------------------------------------

def test_assignment_is_seeded_order_free_and_honours_the_fractions():
    rnd = random.Random(1)
    rows = {("speaker", f"s{i}"): rnd.randint(1, 30) for i in range(300)}
    a = assign_speakers(rows, (0.8, 0.1, 0.1), seed=0)
    shuffled = dict(sorted(rows.items(), key=lambda kv: rnd.random()))
    assert assign_speakers(shuffled, (0.8, 0.1, 0.1), seed=0) == a
    assert assign_speakers(rows, (0.8, 0.1, 0.1), seed=1) != a
    total = sum(rows.values())
    for split, f in (("train", 0.8), ("validation", 0.1), ("test", 0.1)):
        share = sum(n for g, n in rows.items() if a[g] == split) / total
        assert abs(share - f) < 0.02, (split, share)


def test_every_asked_for_split_gets_a_speaker_and_a_zero_one_none():
    three = {("speaker", s): 5 for s in "abc"}
    assert sorted(assign_speakers(three, (0.8, 0.1, 0.1), 0).values()) == \
        ["test", "train", "validation"]
    assert "test" not in assign_speakers(three, (0.5, 0.5, 0.0), 0).values()
    assert set(assign_speakers({("speaker", "a"): 3}, (0.8, 0.1, 0.1), 0).values()) == {"train"}


@pytest.mark.parametrize("text", ["0.8,0.2", "0.8,0.1,0.1,0", "a,b,c", "0.8,0.3,0.1",
                                  "-0.1,0.6,0.5", "nan,0.5,0.5", ""])
def test_bad_fraction_strings_are_config_errors(text):
    with pytest.raises(ConfigError):
        parse_fractions(text)


# ---- builds ---------------------------------------------------------------------------------

def test_speakers_are_disjoint_and_rows_without_a_speaker_are_their_own(split_builds):
    by = split_of_speaker(split_builds["w1"])
    assert len(by) == 12 + 3 and all(len(splits) == 1 for splits in by.values())
    assert {s for splits in by.values() for s in splits} == {"train", "validation", "test"}


def test_manifest_records_the_setting_and_the_counts(split_builds):
    m = manifest(split_builds["w1"])
    assert m["settings"]["split_by_speaker"] == {"train": 0.8, "validation": 0.1, "test": 0.1,
                                                 "seed": 13, "share_of": "rows"}
    counts = m["sources"]["local"]["speaker_split"]
    assert sum(c["rows"] for c in counts.values()) == 29
    assert sum(c["speakers"] for c in counts.values()) == 12
    assert sum(c["rows_without_speaker"] for c in counts.values()) == 3
    for split, c in counts.items():
        assert c["rows"] == m["sources"]["local"]["splits"][split]["samples"]
        assert c["speakers"] + c["rows_without_speaker"] >= 1
    assert 0.65 <= counts["train"]["rows"] / 29 <= 0.9  # 0.8 to within a speaker or so
    assert m["warnings"] == []


def test_same_seed_same_bytes_whatever_the_workers_other_seed_other_split(split_builds):
    assert tree_bytes(split_builds["w1"]) == tree_bytes(split_builds["w2"])
    assert split_of_speaker(split_builds["seed7"]) != split_of_speaker(split_builds["w1"])
    assert manifest(split_builds["seed7"])["settings"]["split_by_speaker"]["seed"] == 7


def test_without_the_flag_a_train_only_build_warns(folder, tmp_path, env):
    p = build(env, folder, tmp_path / "out")
    assert "warning: local: 29 training samples but no validation or test samples" in p.stderr
    assert "--split-by-speaker 0.8,0.1,0.1" in p.stderr
    m = manifest(tmp_path / "out")
    assert len(m["warnings"]) == 1 and "local" in m["warnings"][0]
    assert m["settings"]["split_by_speaker"] is None
    assert "speaker_split" not in m["sources"]["local"]


def test_rows_with_a_source_split_keep_it(tmp_path, env):
    given = [("g0", "test"), ("g1", "validation"), ("g2", "train"), ("g3", "dev")]
    rows = unsplit_rows() + given  # (own speakers: no speaker leaks into train)
    folder = local_folder(tmp_path / "local", rows, with_split=True)
    build(env, folder, tmp_path / "out", "--split-by-speaker", "0,0,1")  # the rest: all test
    got = {s["speaker"] or s["key"]: s["split"] for s in samples(tmp_path / "out")}
    assert [got[spk] for spk, _ in given] == ["test", "validation", "train", "validation"]
    assert {split for spk, split in got.items() if not spk.startswith("g")} == {"test"}
    counts = manifest(tmp_path / "out")["sources"]["local"]["speaker_split"]
    assert counts["test"]["rows"] == len(rows) - len(given) and counts["train"]["rows"] == 0


@pytest.mark.parametrize("value, says", [("0.8,0.2", "three fractions"),
                                         ("0.8,0.3,0.1", "sum to 1"),
                                         ("x,0.5,0.5", "three numbers"),
                                         ("-1,1,1", ">= 0")])
def test_bad_fractions_are_a_clear_usage_error(folder, tmp_path, env, value, says):
    p = sweaug(env, "build", "--sources", "local", "--local-dir", folder, "--out",
               tmp_path / "out", f"--split-by-speaker={value}", check=False)
    assert p.returncode == 2 and "--split-by-speaker" in p.stderr and says in p.stderr
    assert not (tmp_path / "out").exists()


def test_the_flag_without_the_local_source_is_refused(tmp_path, env):
    p = sweaug(env, "build", "--sources", "fleurs", "--fleurs-dir", FIX / "fleurs", "--out",
               tmp_path / "out", "--split-by-speaker", "0.8,0.1,0.1", check=False)
    assert p.returncode == 2 and "local is not in --sources" in p.stderr
