"""`sweaug view` of a `sweaug label` folder, made here without a model: samples of the bundled
sample's cv with synthetic teacher records (scored as the stage scores them) in shards of a
labelled folder's layout, and its manifest. The page: the manifest's counts, the dropped items,
the worst kept samples first with the word diff, a pseudo-labelled sample (no WER) last; in
headless Chromium, every <audio> loads."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import sweaug
from sweaug.build.shards import ShardWriter, iter_samples, sample_json
from sweaug.label.checks import scores
from test_view import check_in_browser, field, page

WORST, SUBST, PSEUDO = 3, 1, 0  # positions in train: worst in the second shard, pseudo first


def _teacher(text: str, ref: str | None) -> dict:
    s = scores(ref, text) if ref is not None else dict.fromkeys(
        ("wer", "cer", "head_cer", "tail_cer"))
    return {"model": "tiny-teacher", "settings": "ab" * 32, "text": text, **s,
            "language": "sv", "language_prob": 0.99, "repeats": 1, "capped": False,
            "seconds": 2.0, "window": 30.0, "over_window": False}


def _teacher_text(i: int, ref: str) -> str:
    words = ref.rstrip(".").split()
    if i == WORST:
        return "helt annan text"
    if i == SUBST:
        return " ".join(["Och"] + words[:-1] + ["väska"]) + "."  # one inserted, one substituted
    if i == 4:
        return " ".join(words[1:])  # the first word missed
    return ref


@pytest.fixture(scope="module")
def labelled(sample_cv, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("labelled") / "cv-labelled"
    out.mkdir()
    src = sample_cv / "cv"
    splits, info = {"train": 5, "validation": 2}, {}
    for split, n in splits.items():
        items = [(k, json.loads(f["json"]), f["flac"])
                 for k, f in iter_samples(src / f"{split}-000000.tar")][:n]
        writer = ShardWriter(lambda j, split=split: out / f"{split}-{j:06d}.tar", max_samples=3)
        for i, (key, meta, flac) in enumerate(items):
            if split == "train" and i == PSEUDO:  # unlabelled audio: the text is the teacher's
                meta.update(text="Ett pseudo-label.", text_source="teacher")
                meta["teacher"] = _teacher(meta["text"], None)
            else:
                meta["teacher"] = _teacher(_teacher_text(i, meta["text"]), meta["text"])
            writer.write(key, [("flac", flac), ("json", sample_json(meta))])
        info[split] = {"items": items, "shards": writer.close()}
    drops = [{"source": "cv", "split": "train", "item": f"cv_dropped_{i}", "reason": r,
              "detail": f"detail of drop {i}"} for i, r in
             enumerate(["teacher_wer", "teacher_wer", "teacher_repetitive"])]
    manifest = {
        "format": "sweaug-labelled/1", "sweaug_version": "test",
        "teacher": {"model": "tiny-teacher", "settings_sha256": "ab" * 32,
                    "settings": {"model": "tiny-teacher", "language": "sv"}},
        "teacher2": None,
        "filters": {"max_wer": 0.5, "max_edge_cer": None, "applies_to": "train",
                    "unlabelled": False, "reasons": []},
        "sources": {out.name: {"release": "cv 17.0, labelled by tiny-teacher", "splits": {
            split: {"samples": splits[split], "hours": 0.01,
                    "input_samples": splits[split] + (3 if split == "train" else 0),
                    "transcribed": splits[split], "pseudo_labelled": int(split == "train"),
                    "teacher_wer": 0.123456 if split == "train" else 0.0,
                    "drops": {"teacher_repetitive": 1, "teacher_wer": 2} if split == "train"
                    else {},
                    "shards": [{"path": s.path.name, "sha256": s.sha256, "samples": s.samples,
                                "bytes": s.bytes} for s in info[split]["shards"]]}
            for split in splits}}},
        "drops": drops,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    assert len(info["train"]["shards"]) == 2
    return out, info


def test_labelled_page_counts_drops_and_worst_samples(labelled, tmp_path, env):
    folder, info = labelled
    html = tmp_path / "labels.html"
    p = sweaug(env, "view", folder, "--out", html)
    assert "labelled page" in p.stdout and "7 audio clips" in p.stdout, p.stdout
    doc = page(html)
    [train] = doc.find("tr", data_split="train")
    assert field(train, "samples") == "5" and field(train, "input_samples") == "8"
    assert field(train, "teacher_wer") == "12.3"
    assert field(train, "pseudo_labelled") == "1"
    assert field(train, "drops") == "teacher_repetitive 1, teacher_wer 2"
    [section] = doc.find("section", data_split="train")
    [drops] = section.find("table", klass="drops")
    assert [r.attrs["data-reason"] for r in drops.find("tr")[1:]] == \
        ["teacher_wer", "teacher_wer", "teacher_repetitive"]
    assert "detail of drop 2" in drops.find("tr")[3].text

    keys = [k for k, _, _ in info["train"]["items"]]
    rows = section.find("tr", klass="utt")
    # by WER: 5 of 5 words wrong, 2 of 5 (substituted + inserted), 1 of 5, none; no WER: last
    assert [r.attrs["data-key"] for r in rows] == [keys[i] for i in (WORST, SUBST, 4, 2, PSEUDO)]
    assert field(rows[-1], "wer") == "—" and field(rows[-1], "head_cer") == "—"
    assert "no reference" in rows[-1].text and "Ett pseudo-label." in rows[-1].text
    assert [field(r, "wer") for r in rows[:-1]] == ["100", "40", "20", "0"]
    [subst] = [r for r in rows if r.attrs["data-key"] == keys[SUBST]]
    [sub] = subst.find("span", klass="sub")
    assert [c.tag for c in sub.children] == ["del", "ins"]
    assert [c.text for c in sub.children] == [
        info["train"]["items"][SUBST][1]["text_normalized"].split()[-1], "väska"]
    assert [i.text for i in subst.find("ins")] == ["och", "väska"]
    [gone] = next(r for r in rows if r.attrs["data-key"] == keys[4]).find("del")
    assert gone.text == info["train"]["items"][4][1]["text_normalized"].split()[0]
    assert len(doc.find("audio")) == 7
    check_in_browser(html, tmp_path / "labels.png", 7)
    assert len(doc.find("section", data_split="validation")[0].find("tr", klass="utt")) == 2


def test_labelled_page_samples_limits_the_worst_and_needs_no_corpus(labelled, tmp_path, env):
    folder, info = labelled
    html = tmp_path / "few.html"
    sweaug(env, "view", folder, "--out", html, "--samples", "2", "--audio", "none")
    [section] = page(html).find("section", data_split="train")
    assert [r.attrs["data-key"] for r in section.find("tr", klass="utt")] == \
        [info["train"]["items"][WORST][0], info["train"]["items"][SUBST][0]]
    p = sweaug(env, "view", folder, "--corpus", tmp_path, check=False)
    assert p.returncode != 0 and "--corpus is for" in p.stderr
