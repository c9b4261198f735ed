"""The page of a ``sweaug ablate`` run folder (``<out>/<recipe>/``): the report table, the WER
plot, the models and their training data, and per model and evaluation set the worst
recognised utterances — reference vs hypothesis as a word-level diff, with their audio from the
corpus the run evaluated on.

The diff is jiwer's alignment of the normalized texts: the same Levenshtein alignment the
normalized WER was counted from, so the highlighted substitutions, deletions and insertions
add up to exactly the errors in the table (difflib's longest-matching-block diff does not
minimise edits and could disagree with the WER).
"""
from __future__ import annotations

import csv
import math
import re
from pathlib import Path

from .data import CORPUS_FORMAT, AudioSink, ViewError, load_json, read_samples, shard_set
from .plots import png_uri

BASELINE = "baseline"


def finished_mixes(run: Path) -> list[Path]:
    return sorted(p.parent for p in run.glob("*/results.json"))


def looks_like_run(folder: Path) -> bool:
    return bool(finished_mixes(folder)) or any(
        (folder / f).is_file() for f in ("run.json", "plan.txt", "report.md", "results.csv"))


def word_diff(ref: str, hyp: str) -> tuple[list[dict], int]:
    """The word alignment of ``ref`` and ``hyp`` as ``[{"op", "ref", "hyp"}]`` chunks
    (op: equal, substitute, delete, insert) and its error count (S + D + I)."""
    import jiwer

    if not ref.split() and not hyp.split():
        return [], 0
    out = jiwer.process_words([ref], [hyp])
    r, h = out.references[0], out.hypotheses[0]
    chunks, errors = [], 0
    for c in out.alignments[0]:
        rw = r[c.ref_start_idx:c.ref_end_idx]
        hw = h[c.hyp_start_idx:c.hyp_end_idx]
        if c.type == "substitute":  # word by word: ref word struck, its replacement after it
            chunks += [{"op": "substitute", "ref": a, "hyp": b} for a, b in zip(rw, hw)]
            errors += len(rw)
        else:
            chunks.append({"op": c.type, "ref": " ".join(rw), "hyp": " ".join(hw)})
            errors += 0 if c.type == "equal" else len(rw) + len(hw)
    return chunks, errors


def _rate(errors: int, words: int) -> float:
    return errors / words if words else (math.inf if errors else 0.0)


def worst(entry: dict, n: int) -> list[dict]:
    """The ``n`` utterances of an evaluation entry with the highest normalized WER (ties: more
    errors first, then key), with their word diff."""
    from ..train.evaluate import wer_normalize

    lang = entry.get("language") or "sv"
    keys, refs, hyps = entry.get("keys") or [], entry.get("refs") or [], entry.get("hyps") or []
    ne = entry.get("nerrors") or []
    nw = entry.get("nwords") or []
    if not (len(keys) == len(refs) == len(hyps)):
        raise ViewError("an evaluation entry's keys, refs and hyps differ in length")
    stats = []
    for i, key in enumerate(keys):
        nref, nhyp = wer_normalize(refs[i], lang), wer_normalize(hyps[i], lang)
        if i < len(ne) and i < len(nw):
            e, w = int(ne[i]), int(nw[i])
        else:
            e, w = word_diff(nref, nhyp)[1], len(nref.split())
        stats.append((i, e, w))
    stats.sort(key=lambda t: (-_rate(t[1], t[2]), -t[1], str(keys[t[0]])))
    out = []
    for i, e, w in stats[:n]:
        nref, nhyp = wer_normalize(refs[i], lang), wer_normalize(hyps[i], lang)
        chunks, _ = word_diff(nref, nhyp)
        out.append({"key": str(keys[i]), "ref": refs[i], "hyp": hyps[i], "errors": e,
                    "words": w, "rate": _rate(e, w), "diff": chunks, "src": None})
    return out


# ---------------------------------------------------------------- the corpus of a run


def _run_meta(run: Path) -> dict:
    """``run.json`` of a run folder (what ``sweaug ablate`` expects of it), or {}."""
    f = run / "run.json"
    return load_json(f) if f.is_file() else {}


def _recipe_corpus(run: Path) -> Path | None:
    """The ``corpus`` key of the run's recipe (named in run.json or plan.txt), if that file is
    still there."""
    import yaml

    recipe = _run_meta(run).get("recipe_path")
    plan = run / "plan.txt"
    if not recipe and plan.is_file():
        m = re.match(r"recipe .*? \((.+?)\); model ",
                     plan.read_text(encoding="utf-8", errors="replace"))
        recipe = m.group(1) if m else None
    if not recipe or not Path(recipe).is_file():
        return None
    try:
        data = yaml.safe_load(Path(recipe).read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError):
        return None
    c = data.get("corpus") if isinstance(data, dict) else None
    return Path(c) if isinstance(c, str) else None


def candidates(run: Path) -> list[Path]:
    """Where the corpus of a run may be, in order: run.json's ``corpus``, the recipe's
    ``corpus`` key, a ``corpus`` folder (or a corpus root) beside the run or beside any of its
    three parents —
    ``sweaug demo`` writes ``<out>/corpus`` and ``<out>/runs/<recipe>`` — then ``./corpus``
    (``sweaug ablate``'s default)."""
    out = []
    recorded = _run_meta(run).get("corpus")
    if isinstance(recorded, str):
        out.append(Path(recorded))
    rc = _recipe_corpus(run)
    if rc is not None:
        out.append(rc)
    for parent in [run.resolve(), *list(run.resolve().parents)[:3]]:
        out += [parent / "corpus", parent]
    out.append(Path("corpus").resolve())
    seen, uniq = set(), []
    for p in out:
        if str(p) not in seen:
            seen.add(str(p))
            uniq.append(p)
    return uniq


def _check_corpus(corpus: Path, needed: dict[str, set[str]]) -> dict[str, dict[str, dict]]:
    """``{set: {key: {"json", "flac"}}}`` of every needed utterance, or a ViewError saying why
    ``corpus`` is not the corpus the run was evaluated on."""
    if not (corpus / "manifest.json").is_file():
        raise ViewError(f"{corpus} has no manifest.json")
    m = load_json(corpus / "manifest.json")
    if m.get("format") != CORPUS_FORMAT:
        raise ViewError(f"{corpus / 'manifest.json'} is not a `sweaug build` manifest")
    out = {}
    for es, keys in needed.items():
        found = read_samples(shard_set(corpus, es), keys) if keys else {}
        lost = sorted(keys - found.keys())
        if lost:
            raise ViewError(f"its {es} has no utterance {lost[0]!r}"
                            + (f" (and {len(lost) - 1} more evaluated ones)" if len(lost) > 1
                               else "") + ": not the corpus this run was evaluated on")
        out[es] = found
    return out


def locate_corpus(run: Path, needed: dict[str, set[str]], override: Path | None
                  ) -> tuple[Path, dict[str, dict[str, dict]]]:
    """The corpus holding every utterance in ``needed`` (evaluation set -> keys) and those
    utterances: ``--corpus`` when given, else the first of :func:`candidates` that holds
    them all."""
    if override is not None:
        try:
            return Path(override), _check_corpus(Path(override), needed)
        except ViewError as e:
            raise ViewError(f"--corpus {override}: {e}") from None
    recorded = _run_meta(run).get("corpus")
    tried, why_recorded = [], None
    for c in candidates(run):
        try:
            return c, _check_corpus(c, needed)
        except ViewError as e:
            if isinstance(recorded, str) and str(c) == recorded:
                why_recorded = str(e)
            else:
                tried.append(str(c) if not (c / "manifest.json").is_file() else f"{c} ({e})")
    head = (f"run {run} was evaluated on the corpus {recorded} (run.json), but {why_recorded}: "
            f"was the corpus moved?" if why_recorded else
            f"cannot find the corpus run {run} was evaluated on: was it moved?")
    raise ViewError(f"{head} It is none of: {'; '.join(tried)}. Pass --corpus DIR (it needs the "
                    f"evaluation sets {', '.join(sorted(needed))}), or --audio none for the "
                    f"page without audio")


# ---------------------------------------------------------------- the page


def _float(x: str):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _table_from_csv(path: Path) -> list[dict]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        out.append({"mix": r.get("mix", ""), "baseline": r.get("baseline") == "true",
                    "eval_set": r.get("eval_set", ""), "evaluated": r.get("n", "") != "",
                    "n": r.get("n", ""), "n_total": r.get("n_total", ""),
                    "capped": r.get("capped") == "true",
                    **{k: _float(r.get(k)) for k in ("eval_loss", "wer", "wer_lo", "wer_hi",
                                                     "nwer", "nwer_lo", "nwer_hi", "diff",
                                                     "diff_lo", "diff_hi", "ndiff", "ndiff_lo",
                                                     "ndiff_hi")},
                    "verdict": r.get("verdict", ""), "nverdict": r.get("nverdict", ""),
                    "reference": r.get("reference", "")})
    return out


def _table_from_results(results: dict[str, dict]) -> list[dict]:
    out = []
    for name, res in results.items():
        for es, e in (res.get("eval") or {}).items():
            out.append({"mix": name, "baseline": bool(res.get("baseline")), "eval_set": es,
                        "evaluated": True, "n": e.get("n", ""), "n_total": e.get("n_total", ""),
                        "capped": bool(e.get("capped")),
                        **{k: e.get(k) for k in ("eval_loss", "wer", "wer_lo", "wer_hi", "nwer",
                                                 "nwer_lo", "nwer_hi")},
                        **{k: None for k in ("diff", "diff_lo", "diff_hi", "ndiff", "ndiff_lo",
                                             "ndiff_hi")},
                        "verdict": "", "nverdict": "", "reference": ""})
    return out


def run_page(run: Path, worst_n: int, sink: AudioSink, corpus: Path | None = None) -> dict:
    from ..ablate.report import training_text

    meta = _run_meta(run)
    expected = {m.get("name"): m.get("hash") for m in meta.get("models", [])
                if isinstance(m, dict)} if meta else {}
    results, stale = {}, []
    for d in finished_mixes(run):
        res = load_json(d / "results.json")
        name = res.get("mix") or d.name
        if expected.get(name) and res.get("hash") != expected[name]:
            stale.append(name)  # another recipe's settings: the report leaves it out too
            continue
        if not isinstance(res.get("eval"), dict):
            raise ViewError(f"{d / 'results.json'} has no evaluation results ('eval')")
        results[name] = res
    if not results:
        raise ViewError(f"{run} is an ablation run without any finished mix (no "
                        f"<mix>/results.json"
                        + (f" from its recipe; {', '.join(stale)} came from other settings"
                           if stale else " yet")
                        + "): let `sweaug ablate` finish at least one mix")
    order = sorted(results, key=lambda k: not (results[k].get("baseline") or k == BASELINE))
    csv_path = run / "results.csv"
    table = _table_from_csv(csv_path) if csv_path.is_file() else []
    in_csv = list(dict.fromkeys(r["mix"] for r in table))
    not_in_csv = [m for m in order if m not in in_csv]  # finished after the report was written
    table += _table_from_results({m: results[m] for m in not_in_csv})
    order = [m for m in in_csv if m in results] + not_in_csv
    eval_sets = list(dict.fromkeys(r["eval_set"] for r in table))
    reference = next((r["reference"] for r in table if r["reference"]), "")
    if expected:
        unfinished = [n for n in expected if n not in results and n not in stale]
    else:  # no run.json (older runs): mix folders with training state but no results
        unfinished = sorted(p.name for p in run.iterdir() if p.is_dir()
                            and not (p / "results.json").exists()
                            and ((p / "checkpoints").exists() or (p / "tensorboard").exists()))

    models, needed = [], {}
    for name in order:
        res = results[name]
        sets = []
        for es in [s for s in eval_sets if s in res["eval"]] + \
                [s for s in res["eval"] if s not in eval_sets]:
            e = res["eval"][es]
            # long-form recordings are stitched at evaluation time: no shard holds their audio
            rows = worst(e, worst_n) if worst_n and e.get("kind") != "long-form" else []
            needed.setdefault(es, set()).update(r["key"] for r in rows)
            sets.append({"eval_set": es, "n": e.get("n"), "rows": rows})
        models.append({"mix": name, "baseline": bool(res.get("baseline")),
                       "model": res.get("model", ""), "training": training_text(res),
                       "steps": (res.get("train") or {}).get("steps"),
                       "train_loss": (res.get("train") or {}).get("train_loss"), "sets": sets})
    corpus_path = None
    if sink.enabled and any(needed.values()):
        corpus_path, found = locate_corpus(run, needed, corpus)
        for m in models:
            for s in m["sets"]:
                for r in s["rows"]:
                    r["src"] = sink.src(r["key"], found[s["eval_set"]][r["key"]].get("flac"))
    plot = run / "wer.png"
    return {
        "kind": "run", "title": run.name, "path": str(run), "table": table,
        "eval_sets": eval_sets, "reference": reference, "models": models,
        "plot": png_uri(plot.read_bytes()) if plot.is_file() else None,
        "has_report": csv_path.is_file(), "not_in_report": not_in_csv if in_csv else [],
        "corpus": str(corpus_path) if corpus_path else None, "worst_n": worst_n,
        "unfinished": unfinished, "stale": stale,
    }
