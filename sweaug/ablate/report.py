"""The ablation report: ``report.md``, ``results.csv`` and ``wer.png`` in the run folder.

``write_report(run_dir, rows, reference, eval_sets, notes)`` takes one row per model:

```python
{"mix": "cv+aug",                      # the model's name (mix name; the baseline's own name)
 "baseline": False,                    # True (or mix == "baseline"): no fine-tuning
 "data": [{"set": "cv/train", "samples": 1200, "hours": 1.6, "augmented": False},
          {"set": "cv-aug/train", "samples": 2400, "hours": 3.2, "augmented": True}],
 # or sweaug ablate's {"by_source": {...}, "sets": {...}, "on_the_fly_augmentation": ...}
 # (see training_text); "training": free text, shown after the data
 "eval": {"cv/test": {...}}}           # per evaluation set: what evaluate_set() returns
```

An evaluation entry needs ``eval_loss``, ``wer``, ``wer_lo``, ``wer_hi``, ``nwer``, ``nwer_lo``,
``nwer_hi``, ``n`` (and ``capped`` / ``n_total`` when ``max_samples`` cut the set). The paired
difference against the reference model is computed here by a paired bootstrap when both
entries carry per-utterance ``errors``/``words`` (``nerrors``/``nwords``) and ``keys`` — the
utterances are matched by key — or taken from ``diff``/``diff_lo``/``diff_hi`` (``ndiff``...)
when given. WER is written as a fraction in ``results.csv`` and in percent in ``report.md``.

Paired differences (Δ) are taken between trained mixes only: the untrained baseline's WER (the
demo's ~780 %) is no yardstick, so it never is the reference and its rows never get a Δ. When
the reference is unset or names the baseline, the first trained mix is the reference (the
report says so); with fewer than two trained mixes there is no Δ (report.md drops the Δ
columns and says why; results.csv keeps its columns, empty).

``results.csv``, one line per (model, evaluation set), models in report order (baseline first):

* ``mix``, ``baseline`` (true: no fine-tuning), ``reference`` (the trained mix the Δ columns
  are taken against, the same on every line; empty when there is no Δ), ``training`` (what
  :func:`training_text` says), ``eval_set``;
* ``n`` (utterances evaluated; empty: the model was not evaluated on that set), ``n_total``,
  ``capped`` (true: ``max_samples`` cut the set to its first ``n``), ``eval_loss``;
* ``wer``, ``wer_lo``, ``wer_hi`` and ``nwer``, ``nwer_lo``, ``nwer_hi``: WER and normalized
  WER as fractions with their bootstrap interval;
* ``n_paired`` (utterances matched with the reference), ``diff``, ``diff_lo``, ``diff_hi``
  (this model's WER minus the reference's, paired bootstrap interval), ``p_better`` (share of
  resamples where this model made fewer errors), ``verdict`` (better / worse / no significant
  difference), and ``ndiff`` ... ``nverdict`` the same for normalized WER: empty on the
  reference's and the baseline's lines and when there is no reference.

``missing`` names models that a run expects but that have not finished (``sweaug report``
merging cluster jobs): report.md lists them as *not finished*; results.csv and the plot hold the
finished models only.

Every file is written to a temporary name unique to the writer and renamed (jobs on several
machines may write the same run folder); the same inputs give the same bytes (no dates
anywhere; the PNG is drawn with Agg at a fixed size without a Software tag).

``wer.png`` (:func:`wer_figure`) draws the trained mixes on a y-axis scaled to them and their
intervals; the baseline is a dashed line when it falls near that range, and otherwise a
labelled marker at the top edge ("baseline (untrained): 781.8 %") instead of a bar that would
squash the others into the bottom.
"""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from ..files import atomic_write_bytes

CSV_COLUMNS = ["mix", "baseline", "reference", "training", "eval_set", "n", "n_total", "capped",
               "eval_loss", "wer", "wer_lo", "wer_hi", "nwer", "nwer_lo", "nwer_hi",
               "n_paired", "diff", "diff_lo", "diff_hi", "p_better", "verdict",
               "ndiff", "ndiff_lo", "ndiff_hi", "np_better", "nverdict"]
BASELINE_NAME = "baseline"
FORCED_LINE = ("Evaluation forces the language and the task: every `generate` call passes "
               "`language={language}` and `task={task}` (decoder prompt `<|startoftranscript|>"
               "<|{language}|><|{task}|><|notimestamps|>`), and a model whose generation config "
               "cannot force them is refused. The seed's 98 % \"tutorial\" WER came from letting "
               "Whisper detect the language clip by clip (transformers#28814); it cannot be "
               "reproduced here.")


NORMALIZED_LINE = ("*Normalized WER* compares reference and hypothesis after the same "
                   "normalization, `sweaug.build.text.normalized_text` (the samples' `text_normalized`): "
                   "lowercase, numbers as Swedish words (\"3\" and \"tre\" match), no "
                   "punctuation or bracketed text, å/ä/ö kept. *undefined*: errors on no "
                   "reference words.")


def _is_baseline(row: dict) -> bool:
    return bool(row.get("baseline")) or row.get("mix") == BASELINE_NAME


def _display(name: str, baseline: bool) -> str:
    return f"{name} (no fine-tuning)" if baseline else name


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def training_text(row: dict) -> str:
    """What a model was trained on, from the row's ``data`` — a list of shard sets
    (``[{"set", "samples", "hours", "augmented": bool}]``) or ``sweaug ablate``'s description
    (``{"by_source": {src: {"samples", "hours", "augmented": count}}, "sets": {set: weight},
    "on_the_fly_augmentation": recipe}``) — plus its ``training`` text if any."""
    data = row.get("data")
    extra = [str(row["training"])] if row.get("training") else []
    if not data:
        return "; ".join(extra) or ("none (no fine-tuning)" if _is_baseline(row) else "")
    parts, total, aug = [], 0, 0
    if isinstance(data, dict):
        for src, d in (data.get("by_source") or {}).items():
            samples, n_aug = int(d.get("samples", 0)), int(d.get("augmented", 0) or 0)
            total, aug = total + samples, aug + n_aug
            parts.append(f"{src} {samples} samples {float(d.get('hours', 0.0)):.2f} h"
                         + (f" ({n_aug} augmented)" if n_aug else ""))
        if data.get("sets"):
            wsum = sum(data["sets"].values()) or 1.0
            parts.append("weights " + ", ".join(f"{k} {v / wsum:.0%}"
                                                 for k, v in data["sets"].items()))
        if data.get("on_the_fly_augmentation"):
            # every sample the stream yields is augmented as it is read (none on disk is)
            parts.append(f"all {total} samples augmented on the fly "
                         f"({Path(str(data['on_the_fly_augmentation'])).name})"
                         + (f", {aug} of them pre-augmented on disk" if aug else ""))
            return "; ".join(parts + extra)
    else:
        for d in data:
            samples = int(d.get("samples", 0))
            total += samples
            aug += samples if d.get("augmented") else 0
            parts.append(f"{d.get('set', d.get('source', '?'))} {samples} samples "
                         f"{float(d.get('hours', 0.0)):.2f} h"
                         + (" (augmented)" if d.get("augmented") else ""))
    return "; ".join(parts + [f"{aug} of {total} samples augmented"] + extra)


def choose_reference(rows: list[dict], reference: str | None) -> tuple[str | None, str | None]:
    """``(reference, why)``: the trained mix the paired differences are taken against, or None
    when there are fewer than two trained mixes, and a sentence for the report when that is
    not simply the ``reference`` asked for (None when it is). The untrained baseline is never
    the reference: its WER (hundreds of percent on a model trained from scratch) makes every
    difference against it a meaningless "+730 worse"."""
    trained = [r["mix"] for r in rows if not _is_baseline(r)]
    asked_baseline = reference is not None and reference not in trained
    if len(trained) < 2:
        if not trained:
            return None, "No trained mix in this run: no paired differences (Δ)."
        return None, (f"Only one trained mix (`{trained[0]}`): no Δ columns — paired "
                      f"differences are taken between trained mixes only, never against the "
                      f"untrained baseline.")
    if reference is None:
        return trained[0], (f"No reference mix named: Δ is taken against `{trained[0]}`, the "
                            f"first trained mix (never against the untrained baseline).")
    if asked_baseline:
        return trained[0], (f"The reference `{reference}` is the untrained baseline: Δ is taken against `{trained[0]}`, the first "
                            f"trained mix, instead; the baseline gets no Δ.")
    return reference, None


def _paired(entry: dict, ref: dict, prefix: str, bootstrap: int, seed: int, alpha: float):
    """(n_paired, diff, lo, hi, p_better) of entry vs ref for WER (prefix "") or normalized
    WER (prefix "n"), or None when it cannot be computed."""
    from ..train.evaluate import paired_bootstrap_diff

    ek, wk = f"{prefix}errors", f"{prefix}words"
    if f"{prefix}diff" in entry:  # precomputed by the caller
        return (entry.get("n_paired", entry.get("n")), entry[f"{prefix}diff"],
                entry.get(f"{prefix}diff_lo"), entry.get(f"{prefix}diff_hi"),
                entry.get(f"{prefix}p_better"))
    if ek not in entry or ek not in ref or wk not in ref:
        return None
    if "keys" in entry and "keys" in ref:
        pos = {k: i for i, k in enumerate(entry["keys"])}
        pairs = [(j, pos[k]) for j, k in enumerate(ref["keys"]) if k in pos]
    elif len(entry[ek]) == len(ref[ek]):
        pairs = [(j, j) for j in range(len(ref[ek]))]
    else:
        return None
    if not pairs:
        return None
    a = [ref[ek][j] for j, _ in pairs]
    w = [ref[wk][j] for j, _ in pairs]
    b = [entry[ek][i] for _, i in pairs]
    diff, lo, hi, p = paired_bootstrap_diff(a, w, b, n=bootstrap, seed=seed, alpha=alpha)
    return len(pairs), diff, lo, hi, p


def _table(rows: list[dict], reference: str | None, eval_sets: list[str], bootstrap: int,
           seed: int, alpha: float) -> list[dict]:
    """One flat record per (row, eval set), in row order then eval-set order."""
    from ..train.evaluate import verdict

    ref_row = next((r for r in rows if r["mix"] == reference), None) if reference else None
    out = []
    for row in rows:
        for es in eval_sets:
            e = (row.get("eval") or {}).get(es)
            rec = {c: "" for c in CSV_COLUMNS}
            rec.update(mix=row["mix"], baseline=_is_baseline(row), reference=reference or "",
                       training=training_text(row), eval_set=es, evaluated=e is not None)
            if e is None:
                out.append(rec)
                continue
            for c in ("n", "n_total", "eval_loss", "wer", "wer_lo", "wer_hi", "nwer", "nwer_lo",
                      "nwer_hi"):
                rec[c] = e.get(c, "")
            rec["capped"] = bool(e.get("capped", False))
            ref_e = (ref_row.get("eval") or {}).get(es) if ref_row is not None else None
            if ref_e is not None and row is not ref_row and not _is_baseline(row):
                for prefix in ("", "n"):
                    p = _paired(e, ref_e, prefix, bootstrap, seed, alpha)
                    if p is None:
                        continue
                    n_paired, diff, lo, hi, pb = p
                    rec["n_paired"] = n_paired if n_paired is not None else ""
                    rec[f"{prefix}diff"], rec[f"{prefix}diff_lo"] = diff, lo
                    rec[f"{prefix}diff_hi"] = hi
                    rec[f"{prefix}p_better"] = "" if pb is None else pb
                    rec[f"{prefix}verdict"] = (verdict(lo, hi) if _finite(lo) and _finite(hi)
                                               else "")
            out.append(rec)
    return out


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def _csv_bytes(records: list[dict]) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in records:
        w.writerow([_csv_value(r[c]) for c in CSV_COLUMNS])
    return buf.getvalue().encode("utf-8")


# ---------------------------------------------------------------- markdown


UNDEFINED = "undefined"  # a WER over no reference words with errors (NaN in results.json)


def _undefined(x) -> bool:
    return isinstance(x, float) and not math.isfinite(x)


def _pct(x) -> str:
    return f"{100 * x:.1f}" if _finite(x) else (UNDEFINED if _undefined(x) else "—")


def _ci(lo, hi) -> str:
    if _finite(lo) and _finite(hi):
        return f"[{_pct(lo)}, {_pct(hi)}]"
    return UNDEFINED if _undefined(lo) or _undefined(hi) else "—"


def _md_escape(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _markdown(run_dir: Path, rows: list[dict], records: list[dict], reference: str | None,
              eval_sets: list[str], notes: list[str], alpha: float, bootstrap: int,
              has_baseline: bool, missing: list[str], why: str | None = None) -> str:
    level = f"{100 * (1 - alpha):g} %"
    language = task = None
    for row in rows:
        for e in (row.get("eval") or {}).values():
            language, task = language or e.get("language"), task or e.get("task")
    language, task = language or "sv", task or "transcribe"
    resamples = next((e["bootstrap"] for row in rows for e in (row.get("eval") or {}).values()
                      if isinstance(e.get("bootstrap"), int)), bootstrap)
    lines = [f"# Ablation report: {run_dir.name}", ""]
    if missing:
        lines += [f"**Incomplete:** {len(missing)} model(s) not finished yet: "
                  + ", ".join(f"`{_md_escape(m)}`" for m in missing) + " (see the notes).", ""]
    lines += [FORCED_LINE.format(language=language, task=task), ""]
    lines += [f"WER in percent; {level} confidence intervals from {resamples} bootstrap "
              f"resamples of the evaluated utterances. {NORMALIZED_LINE} "
              + (f"Δ WER is the paired bootstrap difference against `{reference}` (negative = "
                 f"fewer errors); *better*/*worse* when its {level} interval excludes 0. Δ is "
                 f"taken between trained mixes only: the untrained baseline gets none."
                 if reference else "") + (f" {why}" if why else ""), ""]

    lines += ["## Models", "", "| Model | Training data |", "|---|---|"]
    if not has_baseline and BASELINE_NAME not in missing:
        lines.append("| baseline (no fine-tuning) | not evaluated in this run |")
    for row in rows:
        lines.append(f"| {_md_escape(_display(row['mix'], _is_baseline(row)))} | "
                     f"{_md_escape(training_text(row))} |")
    for m in missing:
        lines.append(f"| {_md_escape(_display(m, m == BASELINE_NAME))} | not finished |")
    lines.append("")
    lines += _ran_lines(rows)

    delta = reference is not None

    def blank(name: str, why: str) -> str:  # a model without numbers on this set
        return (f"| {name} | — | — | — | — | — | — | {why} | |" if delta
                else f"| {name} | — | — | — | — | — | {why} |")

    for es in eval_sets:
        lines += [f"## {es}", ""]
        if delta:
            lines += [f"| Model | Eval Loss | Eval WER | {level} CI | Normalized WER | {level} CI "
                      f"| n | Δ WER vs {reference} ({level} CI) | Δ normalized WER |",
                      "|---|---:|---:|---|---:|---|---:|---|---|"]
        else:
            lines += [f"| Model | Eval Loss | Eval WER | {level} CI | Normalized WER | {level} CI "
                      f"| n |", "|---|---:|---:|---|---:|---|---:|"]
        if not has_baseline and BASELINE_NAME not in missing:
            lines.append(blank("baseline", "not evaluated"))
        for r in (r for r in records if r["eval_set"] == es):
            name = _md_escape(_display(r["mix"], r["baseline"]))
            if not r["evaluated"]:
                lines.append(blank(name, "not evaluated"))
                continue
            sub = ""
            if r["capped"]:
                total = r["n_total"]
                sub = f" (n={r['n']} of {total})" if total not in ("", None) else \
                    f" (first {r['n']})"
            loss = f"{r['eval_loss']:.4f}" if _finite(r["eval_loss"]) else "—"
            cells = [loss + sub, _pct(r["wer"]) + sub, _ci(r["wer_lo"], r["wer_hi"]) + sub,
                     _pct(r["nwer"]) + sub, _ci(r["nwer_lo"], r["nwer_hi"]) + sub,
                     str(r["n"]) + (" (subset)" if r["capped"] else "")]
            for prefix in ("", "n") if delta else ():
                if r["mix"] == reference:
                    cells.append("reference")
                elif r["baseline"]:
                    cells.append("")  # no Δ against or for the untrained model
                elif r[f"{prefix}diff"] == "":
                    cells.append("—")
                elif _undefined(r[f"{prefix}diff"]):
                    cells.append(UNDEFINED + sub)
                else:
                    d = r[f"{prefix}diff"]
                    cells.append(f"{'+' if d > 0 else ''}{100 * d:.1f} "
                                 f"{_ci(r[f'{prefix}diff_lo'], r[f'{prefix}diff_hi'])}"
                                 f" {r[f'{prefix}verdict']}".rstrip() + sub)
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for m in missing:
            lines.append(blank(_md_escape(m), "not finished"))
        lines.append("")
        over = _over_window_line(rows, es)
        if over:
            lines += [over, ""]
        lines += _whisper_format_lines(rows, es, level)

    lines += ["![WER per model with confidence intervals](wer.png)", ""]
    if notes:
        lines += ["## Notes", ""] + [f"- {_md_escape(n)}" for n in notes] + [""]
    return "\n".join(lines)


def _whisper_format_lines(rows: list[dict], es: str, level: str) -> list[str]:
    """Below a set's WER table: how its long-form recordings were made, or a window set's
    timestamp error and no-speech hallucination rate (train/longform.py), per model."""
    entries = [(r, (r.get("eval") or {}).get(es)) for r in rows]
    entries = [(r, e) for r, e in entries if e]
    if not entries:
        return []
    kind = entries[0][1].get("kind")
    if kind == "long-form":
        e = entries[0][1]
        secs = e.get("recording_seconds") or [0]
        return [f"Long-form: {e['n']} recording(s) of {min(secs):.0f}-{max(secs):.0f} s (mean "
                f"{sum(secs) / len(secs):.0f} s, {sum(e.get('utterances') or [])} utterances) "
                f"stitched from {e.get('from', '?')}, each transcribed whole with sequential "
                f"long-form generation (timestamps on, {e.get('window_seconds', 30):g}-s window); "
                f"WER over the whole recording, the interval resamples recordings.", ""]
    if kind != "windows":
        return []

    def secs(v) -> str:
        return f"{v:.2f}" if _finite(v) else "—"

    out = [f"Window metrics on {es}: timestamp error = mean |start| and |end| error of the "
           f"matched segments (s), hallucination rate = share of no-speech windows with any "
           f"word ({level} CI).", "",
           "| Model | Timestamp error (s) | CI | Segments matched | Hallucination rate | CI | "
           "By kind |", "|---|---:|---|---:|---:|---|---|"]
    for row, e in entries:
        kinds = ", ".join(f"{k} {_pct(v['rate'])} (n={v['n']})"
                          for k, v in (e.get("hallucination_by_kind") or {}).items())
        matched = (f"{e['matched']} of {e['segments']}" if "segments" in e else "—")
        out.append(f"| {_md_escape(_display(row['mix'], _is_baseline(row)))} | "
                   f"{secs(e.get('timestamp_error'))} | "
                   f"[{secs(e.get('timestamp_error_lo'))}, {secs(e.get('timestamp_error_hi'))}] | "
                   f"{matched} | {_pct(e.get('hallucination_rate'))} | "
                   f"{_ci(e.get('hallucination_rate_lo'), e.get('hallucination_rate_hi'))} | "
                   f"{kinds or '—'} |")
    return out + [""]


def _ran_with_text(ran: dict | None) -> str:
    """``cuda (NVIDIA T4), fp16, adamw_bnb_8bit, sdpa, gradient checkpointing (non-reentrant)``
    from a ``ran_with`` / ``evaluated_with`` record (:mod:`sweaug.train.device`)."""
    if not ran:
        return "not recorded (an older sweaug)"
    dev = ran.get("device", "?")
    name = ran.get("device_name")
    parts = [f"{dev} ({name})" if name and name != dev else str(dev)]
    parts += [str(ran[k]) for k in ("precision", "optimizer") if ran.get(k)]
    if ran.get("attention"):
        parts.append(f"{ran['attention']} attention")
    if "gradient_checkpointing" in ran:
        if ran["gradient_checkpointing"]:
            kind = ran.get("checkpointing_reentrant")
            parts.append("gradient checkpointing" + (
                "" if kind is None else f" ({'reentrant' if kind else 'non-reentrant'})"))
        else:
            parts.append("no gradient checkpointing")
    if ran.get("batch_size"):
        parts.append(f"batch {ran['batch_size']}")
    text = ", ".join(parts)
    if ran.get("fallbacks"):
        text += "; instead of the recipe's: " + "; ".join(str(f) for f in ran["fallbacks"])
    return text


def _dropped_text(train: dict | None) -> str:
    d = (train or {}).get("dropped")
    if not d:
        return "—"
    n_w, n_l = int(d.get("over_window", 0)), int(d.get("over_max_labels", 0))
    n_a = int(d.get("augment_failed", 0))
    if not n_w and not n_l and not n_a:
        return "none"
    parts = []
    if n_w:
        parts.append(f"{n_w} over the {float(d.get('window_seconds', 30)):g} s window "
                     f"after augmentation")
    if n_l:
        parts.append(f"{n_l} with more than {d.get('max_label_tokens', 448)} label tokens")
    if n_a:
        parts.append(f"{n_a} whose on-the-fly augmentation failed (clipping, NaN)")
    return ", ".join(parts)


def _ran_lines(rows: list[dict]) -> list[str]:
    """The *How each model ran* table: what the device actually ran (precision, optimizer,
    attention, checkpointing, the fallbacks from the recipe's settings), the training samples
    dropped, and the evaluation's device, precision and batch. (Speeds — the evaluation's
    ``clips_per_second``, the training's ``throughput`` — stay in each ``results.json``: the
    report is a function of the results, the same bytes however the models were scheduled.)"""
    lines = ["## How each model ran", "",
             "| Model | Trained with | Training samples dropped | Evaluated with |",
             "|---|---|---|---|"]
    for row in rows:
        train = row.get("train") or {}
        ev = dict(row.get("evaluated_with") or {})
        sizes = {e.get("batch_size") for e in (row.get("eval") or {}).values()} - {None}
        if len(sizes) == 1:
            ev["batch_size"] = sizes.pop()
        lines.append(
            f"| {_md_escape(_display(row['mix'], _is_baseline(row)))} | "
            f"{'— (no fine-tuning)' if _is_baseline(row) else _md_escape(_ran_with_text(train.get('ran_with')))} | "
            f"{'—' if _is_baseline(row) else _md_escape(_dropped_text(train))} | "
            f"{_md_escape(_ran_with_text(ev if ev else None))} |")
    return lines + [""]


def _over_window_line(rows: list[dict], es: str) -> str | None:
    """How many clips of an evaluation set were longer than the model's window (their audio
    was cut to it, their transcript kept whole): one count when every model saw the same."""
    counts = {}
    for row in rows:
        e = (row.get("eval") or {}).get(es)
        if e is None or "truncated_audio" not in e:
            continue
        counts[row["mix"]] = (int(e["truncated_audio"]), int(e.get("n", 0)),
                              e.get("window_seconds"))
    if not counts:
        return None
    distinct = set(counts.values())
    if len(distinct) == 1:
        k, n, w = distinct.pop()
        win = f"{float(w):g} s" if w else "30 s"
        return (f"Clips longer than the model's {win} window (audio cut to it, transcript kept "
                f"whole, so their words past the cut count as errors): {k} of {n}.")
    return ("Clips longer than the model's window (audio cut, transcript kept): "
            + "; ".join(f"{m} {k} of {n}" for m, (k, n, _) in counts.items()) + ".")


# ---------------------------------------------------------------- plot


BASELINE_LABEL = "baseline (untrained)"
# the baseline is drawn to scale (a dashed line) while it is at most this many times the trained
# mixes' highest value (their CIs included); above, it would squash them: a labelled marker
INSIDE_FACTOR = 1.5


def _value(r: dict | None, key: str):
    """(y, lo, hi) in percent of a record's WER (key "wer") or normalized WER ("nwer"), or
    None; lo/hi None when not finite."""
    if r is None or not r["evaluated"] or not _finite(r[key]):
        return None
    lo, hi = r[f"{key}_lo"], r[f"{key}_hi"]
    return (100 * r[key], 100 * lo if _finite(lo) else None, 100 * hi if _finite(hi) else None)


def plot_data(records: list[dict], mixes: list[str], eval_sets: list[str]) -> dict:
    """What :func:`wer_figure` draws, per panel (``"wer"``, ``"nwer"``): ``bars`` (mix,
    eval-set index, y, lo, hi in percent) of the trained mixes — or of the baseline when no
    mix is trained —, ``baseline`` (eval-set index, y, lo, hi, ``"line"`` or ``"marker"``)
    and ``ylim``: (0, top) scaled to the bars and their intervals, and to the baseline only
    when it is drawn as a line."""
    by = {(r["mix"], r["eval_set"]): r for r in records}
    base_names = [m for m in mixes
                  if any(r["baseline"] for r in records if r["mix"] == m)] or \
        [m for m in mixes if m == BASELINE_NAME]
    trained = [m for m in mixes if m not in base_names]
    bar_mixes = trained or base_names
    out = {"bar_mixes": bar_mixes, "baseline_bars": not trained}
    for key in ("wer", "nwer"):
        bars = []
        for mix in bar_mixes:
            for i, es in enumerate(eval_sets):
                v = _value(by.get((mix, es)), key)
                if v is not None:
                    bars.append((mix, i) + v)
        top = max([max(y, hi if hi is not None else y) for *_, y, lo, hi in bars], default=0.0)
        baseline = []
        if trained:
            for mix in base_names:
                for i, es in enumerate(eval_sets):
                    v = _value(by.get((mix, es)), key)
                    if v is not None:
                        inside = bool(bars) and v[0] <= INSIDE_FACTOR * top
                        baseline.append((i,) + v + ("line" if inside else "marker",))
        data_top = max([top] + [y for _, y, _, _, mode in baseline if mode == "line"])
        room = 1.3 if any(b[-1] == "marker" for b in baseline) else 1.12  # the marker's label
        out[key] = {"bars": bars, "baseline": baseline,
                    "ylim": (0.0, max(data_top * room, 1.0))}
    return out


def wer_figure(records: list[dict], mixes: list[str], eval_sets: list[str], alpha: float):
    """The figure of ``wer.png``: grouped bars (one group per evaluation set, one bar per
    trained mix) of WER and normalized WER in percent, with the bootstrap intervals as error
    bars, on a y-axis scaled to the trained mixes (:func:`plot_data`). The untrained baseline
    is a dashed line across its group when it is within that scale, otherwise a marker at the
    top edge labelled with its value ("baseline (untrained): 781.8 %")."""
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # Agg, without pyplot's state
    from matplotlib.figure import Figure

    data = plot_data(records, mixes, eval_sets)
    bar_mixes = data["bar_mixes"]
    panel = max(5.0, 1.5 + 0.5 * len(eval_sets) * max(len(bar_mixes), 1))
    fig = Figure(figsize=(2 * panel, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=False)
    width = 0.8 / max(len(bar_mixes), 1)
    colors = matplotlib.colormaps["tab10"]
    for ax, (key, title) in zip(axes, [("wer", "WER (orthographic)"),
                                       ("nwer", "Normalized WER")]):
        d = data[key]
        top = d["ylim"][1]
        for j, mix in enumerate(bar_mixes):
            xs, ys, lo, hi = [], [], [], []
            for _, i, y, l, h in (b for b in d["bars"] if b[0] == mix):
                xs.append(i - 0.4 + width * (j + 0.5))
                ys.append(y)
                lo.append(max(y - l, 0.0) if l is not None else 0.0)
                hi.append(max(h - y, 0.0) if h is not None else 0.0)
            ax.bar(xs, ys, width=width * 0.95, yerr=[lo, hi], capsize=3,
                   label=BASELINE_LABEL if data["baseline_bars"] else mix,
                   color="dimgray" if data["baseline_bars"] else colors(j % 10))
        labelled = False
        for i, y, l, h, mode in d["baseline"]:
            ci = f" [{l:.1f}, {h:.1f}]" if l is not None and h is not None else ""
            if mode == "line":
                ax.plot([i - 0.45, i + 0.45], [y, y], linestyle="--", color="dimgray",
                        linewidth=1.4, label=None if labelled else BASELINE_LABEL)
                labelled = True
                ax.annotate(f"baseline {y:.1f} %", (i + 0.45, y), xytext=(0, 2),
                            textcoords="offset points", ha="right", va="bottom",
                            fontsize="x-small", color="dimgray")
            else:  # far above the trained mixes: at the top edge, with its value
                ax.plot([i], [top], marker="^", markersize=8, color="dimgray",
                        clip_on=False, linestyle="none")
                ax.annotate(f"{BASELINE_LABEL}: {y:.1f} %{ci}\n(off this scale)", (i, top),
                            xytext=(0, -7), textcoords="offset points", ha="center",
                            va="top", fontsize="x-small", color="dimgray")
        ax.set_ylim(*d["ylim"])
        ax.set_xticks(range(len(eval_sets)))
        ax.set_xticklabels(eval_sets)
        ax.set_ylabel(f"{title} (%)")
        ax.set_title(f"{title}, {100 * (1 - alpha):g} % CI")
        ax.set_xlim(-0.6, len(eval_sets) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small")
    fig.tight_layout()
    return fig


def _png_bytes(records: list[dict], mixes: list[str], eval_sets: list[str], alpha: float) -> bytes:
    """:func:`wer_figure` as PNG bytes: the same inputs give the same bytes."""
    fig = wer_figure(records, mixes, eval_sets, alpha)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------- entry point


def write_report(run_dir: Path, rows: list[dict], reference: str | None, eval_sets: list[str],
                 notes: list[str], *, bootstrap: int = 1000, seed: int = 0,
                 alpha: float = 0.05, missing: list[str] = ()) -> dict[str, Path]:
    """Write ``report.md``, ``results.csv`` and ``wer.png`` into ``run_dir`` (atomically);
    return ``{"report.md": path, "results.csv": path, "wer.png": path}``.

    ``reference`` names the trained mix the paired differences are taken against; ``None`` or
    the baseline means the first trained mix (:func:`choose_reference`). The baseline (no fine-tuning) always appears in report.md:
    when no row is the baseline, a row says it was not evaluated. Rows and evaluation sets keep
    their order, except that the baseline comes first. ``missing``: models expected but not
    finished, listed as such in report.md.
    """
    run_dir = Path(run_dir)
    names = [r.get("mix") for r in rows]
    if any(not isinstance(n, str) or not n for n in names):
        raise ValueError("every row needs a non-empty 'mix' name")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate model names in rows: {names}")
    missing = [m for m in missing if m not in names]
    rows = sorted(rows, key=lambda r: not _is_baseline(r))  # stable: baseline first
    has_baseline = any(_is_baseline(r) for r in rows)
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the rows ({', '.join(names)})")
    reference, why = choose_reference(rows, reference)
    records = _table(rows, reference, list(eval_sets), bootstrap, seed, alpha)
    md = _markdown(run_dir, rows, records, reference, list(eval_sets), list(notes), alpha,
                   bootstrap, has_baseline, missing, why)
    png = _png_bytes(records, [r["mix"] for r in rows], list(eval_sets), alpha)
    paths = {"report.md": run_dir / "report.md", "results.csv": run_dir / "results.csv",
             "wer.png": run_dir / "wer.png"}
    atomic_write_bytes(paths["results.csv"], _csv_bytes(records))
    atomic_write_bytes(paths["wer.png"], png)
    atomic_write_bytes(paths["report.md"], md.encode("utf-8"))
    return paths
