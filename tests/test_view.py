"""`sweaug view`: the pages of a corpus, a source folder, an augmented folder and an ablation
run, from the CLI; their counts against the manifests and results; and each page in headless
Chromium — no console error, every <audio> loads, a screenshot."""
from __future__ import annotations

import json
import shutil
import tarfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

from browser import audio_states, open_page
from conftest import CV12, FIX, ROOT, sweaug, tiny_recipe

ALL = ["--sources", "cv,fleurs,rixvox,local", "--cv-dir", CV12, "--cv-extra", "validated",
       "--fleurs-dir", FIX / "fleurs", "--rixvox-dir", FIX / "rixvox", "--local-dir",
       FIX / "local", "--shard-samples", "3", "--no-progress"]

RECIPE = tiny_recipe("mini", 3, """\
evaluation: {sets: [cv/test, cv-aug/test], max_samples: 4, bootstrap: 50, max_new_tokens: 8}
mixes:
  - name: cv+aug
    data: {cv/train: 1.0, cv-aug/train: 1.0}
""")


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, env) -> Path:
    """The fixtures' sources (with drops and leaks), and cv augmented twice into corpus/cv-aug."""
    out = tmp_path_factory.mktemp("view") / "corpus"
    sweaug(env, "build", *ALL, "--out", out)
    sweaug(env, "augment", out / "cv", "--recipe", ROOT / "recipes" / "augment" / "default.yaml",
           "--copies", "2", "--seed", "13", "--out", out / "cv-aug", "--no-progress")
    return out


@pytest.fixture(scope="module")
def run(corpus, env) -> Path:
    """A finished tiny ablation (baseline + one mix, 4 steps) in <tmp>/runs/mini, beside the
    corpus as `sweaug demo` lays them out."""
    recipe = corpus.parent / "mini.yaml"
    recipe.write_text(RECIPE)
    sweaug(env, "ablate", recipe, "--corpus", corpus, "--out", corpus.parent / "runs")
    return corpus.parent / "runs" / "mini"


# ---------------------------------------------------------------- reading a page back


class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children, self.text = tag, attrs, parent, [], ""

    def find(self, tag=None, **attrs) -> list["Node"]:
        """Descendants with ``tag`` and these attributes (``data_x`` for ``data-x``;
        ``klass`` for ``class``, matched as one of the classes)."""
        out = []
        for c in self.children:
            ok = tag is None or c.tag == tag
            for k, v in attrs.items():
                name = "class" if k == "klass" else k.replace("_", "-")
                have = c.attrs.get(name)
                ok = ok and (v in (have or "").split() if name == "class" else have == str(v))
            if ok:
                out.append(c)
            out += c.find(tag, **attrs)
        return out


class Page(HTMLParser):
    VOID = {"img", "br", "meta", "link", "input", "hr", "source"}

    def __init__(self, html: str):
        super().__init__()
        self.root = self.cur = Node("root", {}, None)
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, dict(attrs), self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            while self.cur is not n.parent:
                self.cur.parent.text += self.cur.text
                self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.text += data


def page(path: Path) -> Node:
    return Page(path.read_text(encoding="utf-8")).root


def field(row: Node, name: str) -> str:
    [cell] = row.find(data_field=name)
    return cell.text.strip()


def shard_meta(shards) -> dict[str, dict]:
    out = {}
    for shard in shards:
        with tarfile.open(shard) as t:
            for m in t:
                if m.name.endswith(".json"):
                    out[m.name[:-5]] = json.loads(t.extractfile(m).read())
    return out


def check_in_browser(html: Path, shot: Path, n_audio: int) -> None:
    with open_page(html, screenshot=shot) as p:
        states = audio_states(p)
        assert p.errors == []
    assert len(states) == n_audio
    bad = [s for s in states if not (s["readyState"] >= 1 and s["error"] is None
                                     and s["duration"] > 0)]
    assert bad == [], bad
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


# ---------------------------------------------------------------- the pages


def test_corpus_page_counts_equal_the_manifest_and_it_plays(corpus, tmp_path, env):
    out = tmp_path / "corpus.html"
    p = sweaug(env, "view", corpus, "--out", out, "--samples", "3", "--seed", "5")
    assert f"wrote {out} (corpus page" in p.stdout
    m = json.loads((corpus / "manifest.json").read_text())
    am = json.loads((corpus / "cv-aug" / "manifest.json").read_text())
    root = page(out)
    n_audio = 0
    for name, src in m["sources"].items():
        for split, s in src["splits"].items():
            [row] = root.find("tr", data_source=name, data_split=split)
            assert int(field(row, "samples")) == s["samples"]
            assert float(field(row, "hours")) == pytest.approx(s["hours"], abs=1e-4)
            assert int(field(row, "speakers")) == s["speakers"]
            assert int(field(row, "shards")) == len(s["shards"])
            assert int(field(row, "dropped")) == sum(s["drops"].values())
            for reason, n in s["drops"].items():
                [cell] = root.find("td", data_source=name, data_split=split, data_reason=reason)
                assert int(cell.text) == n
            # the sample table: min(3, samples) real rows of this split, text as in the shard
            meta = shard_meta(corpus / sh["path"] for sh in s["shards"])
            [table] = root.find("table", data_source=name, data_split=split)
            rows = table.find("tr", klass="sample")
            assert len(rows) == min(3, s["samples"])
            for r in rows:
                assert meta[r.attrs["data-key"]]["text"] in r.text
            n_audio += len(rows)
    [total] = root.find("table", id="stats")[0].find(data_field="total-samples")
    assert int(total.text) == sum(s["samples"] for src in m["sources"].values()
                                  for s in src["splits"].values())
    [leak] = root.find("section", id="leakage")
    assert int(leak.attrs["data-count"]) == m["leakage"]["count"] == 2
    assert len(leak.find("tr", klass="leak")) == 2
    # the augmented folder inside the corpus: its own section, counts from its manifest
    for split, s in am["sources"]["cv-aug"]["splits"].items():
        [row] = root.find("tr", data_set="cv-aug", data_split=split)
        assert (int(field(row, "samples")), int(field(row, "augmented")),
                int(field(row, "unchanged"))) == (s["samples"], s["augmented"], s["unchanged"])
        items = root.find("div", klass="aug-samples", data_split=split)[0].find(klass="aug-item")
        assert len(items) == min(3, m["sources"]["cv"]["splits"][split]["samples"])
        n_audio += sum(1 + len(i.find(klass="copy")) for i in items)
    assert len(root.find("img", klass="plot")) == len(m["sources"])  # one histogram figure each
    # same inputs and seed, same bytes; another seed draws other rows
    again = tmp_path / "again.html"
    sweaug(env, "view", corpus, "--out", again, "--samples", "3", "--seed", "5")
    assert again.read_bytes() == out.read_bytes()
    check_in_browser(out, tmp_path / "corpus.png", n_audio)


def test_source_page_with_audio_files_next_to_it(corpus, tmp_path, env):
    out = tmp_path / "pages" / "cv.html"
    out.parent.mkdir()
    sweaug(env, "view", corpus / "cv", "--out", out, "--samples", "2", "--audio", "files")
    root = page(out)
    m = json.loads((corpus / "manifest.json").read_text())
    stats = root.find("table", id="stats")[0]
    assert {r.attrs["data-source"] for r in stats.find("tr", data_split="train")} == {"cv"}
    [leak] = root.find("section", id="leakage")
    assert int(leak.attrs["data-count"]) == 2  # both leaks of the fixtures are cv's
    srcs = [a.attrs["src"] for a in root.find("audio")]
    # two per split for the source, and an original plus its two copies for cv-aug
    assert len(srcs) == 2 * len(m["sources"]["cv"]["splits"]) * (1 + 3)
    assert all(s.startswith("cv_audio/") and (out.parent / s).is_file() for s in srcs)
    check_in_browser(out, tmp_path / "cv.png", len(srcs))


def test_augmented_page_shows_each_copy_with_what_was_applied(corpus, tmp_path, env):
    out = tmp_path / "aug.html"
    sweaug(env, "view", corpus / "cv-aug", "--out", out, "--samples", "2", "--seed", "1")
    root = page(out)
    copies = shard_meta(sorted((corpus / "cv-aug").glob("*.tar")))
    originals = shard_meta(sorted((corpus / "cv").glob("*.tar")))
    items = root.find("div", klass="aug-item")
    assert len(items) == 2 * 3  # two originals of each split
    for item in items:
        key = item.attrs["data-key"]
        assert originals[key]["text"] in item.text
        cards = item.find("div", klass="copy")
        assert [c.attrs["data-copy-key"] for c in cards] == [f"{key}-aug0", f"{key}-aug1"]
        for c in cards:
            applied = copies[c.attrs["data-copy-key"]]["augment"]["applied"]
            assert [li.find("b")[0].text for li in c.find("li")] == [a["name"] for a in applied]
            if not applied:
                assert "no transform fired" in c.text
    assert len(root.find("ol")[0].find("li")) == 4  # the recipe's transforms
    check_in_browser(out, tmp_path / "aug.png", 2 * 3 * 3)
    # moved away from the corpus it was augmented from: say so; --corpus finds the originals
    alone = tmp_path / "alone" / "cv-aug"
    shutil.copytree(corpus / "cv-aug", alone)
    p = sweaug(env, "view", alone, "--out", tmp_path / "a.html", check=False)
    assert p.returncode == 2 and "was it moved?" in p.stderr and "Traceback" not in p.stderr
    sweaug(env, "view", alone, "--out", tmp_path / "a.html", "--samples", "2", "--seed", "1",
           "--corpus", corpus / "cv")
    assert (tmp_path / "a.html").read_bytes().replace(str(alone).encode(), b"") == \
        out.read_bytes().replace(str(corpus / "cv-aug").encode(), b"")


def test_run_page_table_worst_utterances_and_audio(run, corpus, tmp_path, env):
    from sweaug.train.evaluate import wer_normalize
    from sweaug.view.run import word_diff

    out = tmp_path / "run.html"
    p = sweaug(env, "view", run, "--out", out, "--worst", "3")  # the corpus is found beside it
    assert "run page" in p.stdout
    root = page(out)
    n_audio = 0
    for mix in ("baseline", "cv+aug"):
        res = json.loads((run / mix / "results.json").read_text())
        for es, e in res["eval"].items():
            [row] = root.find("tr", data_mix=mix, data_eval_set=es)
            assert field(row, "n").split()[0] == str(e["n"])
            assert field(row, "wer") == f"{100 * e['wer']:.1f}"
            assert field(row, "nwer") == f"{100 * e['nwer']:.1f}"
            [table] = root.find("table", klass="worst", data_mix=mix, data_eval_set=es)
            utts = table.find("tr", klass="utt")
            assert len(utts) == min(3, e["n"])
            by_key = dict(zip(e["keys"], zip(e["nerrors"], e["nwords"])))
            rates = []
            for u in utts:
                errors, words = by_key[u.attrs["data-key"]]
                assert (int(u.attrs["data-errors"]), int(u.attrs["data-words"])) == (errors, words)
                rates.append(errors / words)
            assert rates == sorted(rates, reverse=True)
            assert max(rates) == max(a / b for a, b in by_key.values())
            # the diff's alignment is the one the normalized WER was counted from
            for ref, hyp, n in zip(e["refs"], e["hyps"], e["nerrors"]):
                assert word_diff(wer_normalize(ref), wer_normalize(hyp))[1] == n
            n_audio += len(utts)
    assert root.find("img", klass="plot")
    check_in_browser(out, tmp_path / "run.png", n_audio)


def test_run_whose_corpus_moved(run, corpus, tmp_path, env):
    moved = tmp_path / "moved"
    shutil.copytree(run, moved / "runs" / "mini",
                    ignore=shutil.ignore_patterns("checkpoints", "model", "tensorboard"))
    meta_file = moved / "runs" / "mini" / "run.json"
    if meta_file.exists():  # the corpus it records is gone
        meta = json.loads(meta_file.read_text())
        meta["corpus"] = str(tmp_path / "gone" / "corpus")
        meta_file.write_text(json.dumps(meta))
    args = ["view", moved / "runs" / "mini", "--out", tmp_path / "x.html"]
    p = sweaug(env, *args, check=False)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "moved?" in p.stderr and "--corpus DIR" in p.stderr and "--audio none" in p.stderr
    if meta_file.exists():
        assert str(tmp_path / "gone" / "corpus") in p.stderr
    p = sweaug(env, *args, "--corpus", corpus / "cv", check=False)  # not a corpus root
    assert p.returncode == 2 and "--corpus" in p.stderr and "Traceback" not in p.stderr
    sweaug(env, *args, "--corpus", corpus)
    assert len(page(tmp_path / "x.html").find("audio")) > 0
    sweaug(env, *args, "--audio", "none")
    z = page(tmp_path / "x.html")
    assert z.find("audio") == [] and z.find("tr", klass="utt")
    # corpus and runs moved together: found beside the run, as `sweaug demo` lays them out
    shutil.copytree(corpus, moved / "corpus", ignore=shutil.ignore_patterns(".sweaug"))
    p = sweaug(env, *args)
    assert "run page" in p.stdout and f"audio from the corpus <code>{moved / 'corpus'}</code>" \
        in (tmp_path / "x.html").read_text()


def test_text_from_the_corpus_is_escaped(corpus, tmp_path, env):
    copy = tmp_path / "corpus"
    shutil.copytree(corpus, copy, ignore=shutil.ignore_patterns("cv-aug", ".sweaug"))
    evil = '<img src=x onerror="document.title=1">'
    with (copy / "leakage.tsv").open("a") as f:
        f.write(f"cv\ttrain\tcv_x\tx\tleak_sentence\tcv/test/y\t{evil}\n")
    out = tmp_path / "evil.html"
    sweaug(env, "view", copy, "--out", out, "--samples", "0")
    html = out.read_text()
    assert evil not in html and "&lt;img src=x onerror=" in html
    check_in_browser(out, tmp_path / "evil.png", 0)


def test_bad_input_is_a_clear_message(corpus, run, tmp_path, env):
    empty = tmp_path / "empty"
    empty.mkdir()
    shards = tmp_path / "shards"
    shards.mkdir()
    shutil.copy(next((corpus / "cv").glob("*.tar")), shards)
    unfinished = tmp_path / "runs" / "half"
    (unfinished / "cv" / "checkpoints").mkdir(parents=True)
    (unfinished / "plan.txt").write_text("recipe half (half.yaml); model tiny-random\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text("{not json")
    cases = [
        (empty, "not a corpus (no manifest.json)"),
        (shards, "holds shards but no manifest.json"),
        (unfinished, "without any finished mix"),
        (broken, "not a valid JSON manifest"),
        (run.parent, "holds ablation runs, not one"),
        (run / "baseline", "one model of the ablation run"),
        (tmp_path / "missing", "does not exist"),
    ]
    for folder, message in cases:
        p = sweaug(env, "view", folder, "--out", tmp_path / "x.html", check=False)
        assert p.returncode == 2 and message in p.stderr, (folder, p.stderr)
        assert "Traceback" not in p.stderr
    assert not (tmp_path / "x.html").exists()
