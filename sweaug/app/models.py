"""What ``sweaug app`` serves: the fine-tuned models of an ablation run, one mix folder, or a
plain model folder, each with what it was trained on and its WER from the run's results.

A run folder (``sweaug ablate``'s ``runs/<recipe>/``) holds ``<mix>/model/`` (saved by
``train/finetune.py``) and ``<mix>/results.json`` (written once the mix is trained and
evaluated) per mix, plus ``results.csv``/``report.md``. A mix is *finished* when both are there;
the baseline row has no saved model and is never served; an unfinished mix (a killed or running
training: checkpoints but no results.json) is listed as such and not offered.

Only the standard library here: the exported Space imports this module too.
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..records import ConfigError

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")


class AppError(ConfigError):
    """A known bad input of the app (a folder without a finished model, an unreadable upload,
    silence, a recording over the cap): the message is meant for the user as it is."""


@dataclass(frozen=True)
class ModelEntry:
    """One model the app offers: a fine-tuned mix, or a plain model folder / Hub model id."""

    name: str  # the mix name (or the model folder's name)
    model: str  # a model folder, or a Hub model id
    trained_on: str = ""  # one line: the training data (report.training_text)
    base_model: str = ""  # what was fine-tuned (the recipe's `model`)
    steps: int | None = None
    evals: tuple = field(default_factory=tuple)  # per evaluation set: see _eval_entry

    def to_json(self) -> dict:
        d = asdict(self)
        d["evals"] = [dict(e) for e in self.evals]
        return d

    @classmethod
    def from_json(cls, d: dict) -> "ModelEntry":
        return cls(name=str(d["name"]), model=str(d["model"]), trained_on=d.get("trained_on", ""),
                   base_model=d.get("base_model", ""), steps=d.get("steps"),
                   evals=tuple(dict(e) for e in d.get("evals", ())))

    def wer_line(self) -> str:
        """``"WER on cv/test 23.4 % (95 % CI 20.1–26.7)"``, one clause per evaluation set."""
        if not self.evals:
            return "WER unknown (no ablation results for this model)"
        return "; ".join(f"WER on {e['set']} {_pct(e.get('wer'))} "
                         f"(95 % CI {_pct(e.get('wer_lo'), False)}–{_pct(e.get('wer_hi'))}"
                         f"{', ' + _subset(e) if _subset(e) else ''})" for e in self.evals)

    def info_markdown(self) -> str:
        """The model card shown next to the model picker."""
        what = f"fine-tuned from `{self.base_model}`" if self.base_model else "Whisper model"
        steps = f" for {self.steps} steps" if self.steps else ""
        lines = [f"**{self.name}** — {what}{steps}",
                 "",
                 f"Trained on: {self.trained_on or 'unknown (no ablation results)'}"]
        if self.evals:
            diff = any("diff" in e for e in self.evals)
            lines += ["", "| evaluation set | WER (95 % CI) | normalized WER (95 % CI) | n |"
                      + (" Δ WER vs reference (95 % CI) |" if diff else ""),
                      "|---|---|---|---|" + ("---|" if diff else "")]
            for e in self.evals:
                row = (f"| {e['set']} | {_pct(e.get('wer'))} ({_ci(e, 'wer')}) | "
                       f"{_pct(e.get('nwer'))} ({_ci(e, 'nwer')}) | {_n(e)} |")
                if "diff" in e:
                    row += (f" {_signed(e['diff'])} ({_signed(e.get('diff_lo'))} to "
                            f"{_signed(e.get('diff_hi'))}) vs {e.get('reference', '?')}: "
                            f"{e.get('verdict', '')} |")
                elif diff:
                    row += " |"
                lines.append(row)
        else:
            lines += ["", "WER: unknown (a plain model folder, no ablation results)."]
        return "\n".join(lines)


def _pct(x, unit: bool = True) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:.1f}" + (" %" if unit else "")


def _signed(x) -> str:
    if not isinstance(x, (int, float)) or not math.isfinite(x):
        return "n/a"
    return f"{100 * x:+.1f}"


def _ci(e: dict, key: str) -> str:
    return f"{_pct(e.get(key + '_lo'), False)}–{_pct(e.get(key + '_hi'), False)}"


def _subset(e: dict) -> str:
    return f"{e['n']} of {e['n_total']} evaluated" if e.get("capped") and e.get("n_total") else ""


def _n(e: dict) -> str:
    return _subset(e) or str(e.get("n", ""))


# ---------------------------------------------------------------- discovery


def is_model_dir(p: Path) -> bool:
    return (p / "config.json").is_file() and any((p / f).is_file() for f in WEIGHT_FILES)


def _is_mix_dir(p: Path) -> bool:
    return any((p / n).exists() for n in ("results.json", "model", "checkpoints"))


def _csv_rows(run_dir: Path) -> list[dict]:
    f = run_dir / "results.csv"
    if not f.is_file():
        return []
    try:
        with f.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []


def _float(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


def _eval_entry(name: str, ev: dict, csv_row: dict | None) -> dict:
    keys = ("wer", "wer_lo", "wer_hi", "nwer", "nwer_lo", "nwer_hi", "n", "n_total", "capped")
    e = {"set": name, **{k: ev.get(k) for k in keys}}
    if csv_row and csv_row.get("verdict") and _float(csv_row.get("diff")) is not None:
        e.update(reference=csv_row.get("reference", ""), diff=_float(csv_row["diff"]),
                 diff_lo=_float(csv_row.get("diff_lo")), diff_hi=_float(csv_row.get("diff_hi")),
                 verdict=csv_row["verdict"])
    return e


def _run_models(run_dir: Path) -> dict[str, str | None]:
    """``{mix name: expected results hash}`` from the run's ``run.json`` (recipe order; not the
    baseline); empty when there is none (runs written before it existed)."""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
        return {str(m["name"]): m.get("hash") for m in meta["models"] if not m.get("baseline")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def mix_entry(mix_dir: Path, csv_rows: list[dict] | None = None,
              expected_hash: str | None = None) -> tuple[ModelEntry | None, str]:
    """``(entry, "")`` for a finished mix folder, else ``(None, why it is not served)``.
    ``expected_hash``: the run's hash for this mix; results.json with another one are stale."""
    from ..ablate.report import training_text

    res = mix_dir / "results.json"
    if not res.is_file():
        return None, "not finished (no results.json: training or evaluation did not complete)"
    try:
        row = json.loads(res.read_text(encoding="utf-8"))
        if not isinstance(row, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return None, f"unreadable results.json ({e})"
    if row.get("baseline"):
        return None, "the baseline (the model without fine-tuning: no saved model)"
    if expected_hash and row.get("hash") != expected_hash:
        return None, ("stale (its results.json is from another version of the recipe than "
                      "run.json; re-run `sweaug ablate`)")
    if not is_model_dir(mix_dir / "model"):
        return None, "no model/ folder with config.json and weights"
    name = str(row.get("mix") or mix_dir.name)
    by_set = {r.get("eval_set"): r for r in (csv_rows or []) if r.get("mix") == name}
    evals = tuple(_eval_entry(s, ev, by_set.get(s))
                  for s, ev in sorted((row.get("eval") or {}).items()) if isinstance(ev, dict))
    train = row.get("train") or {}
    return ModelEntry(name=name, model=str(mix_dir / "model"), trained_on=training_text(row),
                      base_model=str(row.get("model") or ""), steps=train.get("steps"),
                      evals=evals), ""


def discover(path: Path, mixes: list[str] | tuple[str, ...] | None = None
             ) -> tuple[list[ModelEntry], dict[str, str]]:
    """``(entries, skipped)``: the models to serve from ``path`` (a run folder, a mix folder or
    a model folder), in the run's report order, restricted to ``mixes`` (in that order) when
    given; and the run's mix folders that are not served, with the reason.

    Raises :class:`AppError` when there is nothing finished to serve, naming what was found.
    """
    path = Path(path)
    if not path.exists():
        raise AppError(f"{path}: no such folder")
    if not path.is_dir():
        raise AppError(f"{path}: not a folder (expected an ablation run folder, a mix folder or "
                       f"a model folder)")
    if is_model_dir(path):
        if _is_mix_dir(path.parent) and path.name == "model":
            return discover(path.parent, mixes)
        entries, skipped = [ModelEntry(name=path.resolve().name, model=str(path))], {}
    elif _is_mix_dir(path):
        entry, why = mix_entry(path, _csv_rows(path.parent),
                               _run_models(path.parent).get(path.name))
        if entry is None:
            raise AppError(f"{path}: mix {path.name!r} cannot be served: {why}")
        entries, skipped = [entry], {}
    else:
        rows = _csv_rows(path)
        expected = _run_models(path)  # run.json: the recipe's models and their hashes
        order = list(dict.fromkeys([*expected, *(r.get("mix", "") for r in rows)]))
        found = {d.name for d in path.iterdir() if d.is_dir() and _is_mix_dir(d)}
        names = sorted(set(expected) | found,
                       key=lambda n: (order.index(n) if n in order else len(order), n))
        if not names:
            raise AppError(f"{path}: neither an ablation run folder (<mix>/model/ and "
                           f"<mix>/results.json, as `sweaug ablate` writes), a mix folder nor a "
                           f"model folder (config.json and weights)")
        entries, skipped = [], {}
        for name in names:
            if name not in found:
                skipped[name] = "not started (no folder)"
                continue
            entry, why = mix_entry(path / name, rows, expected.get(name))
            if entry is None:
                skipped[name] = why
            else:
                entries.append(entry)
        if not entries:
            listing = "; ".join(f"{k}: {v}" for k, v in skipped.items())
            raise AppError(f"{path}: no finished mix to serve ({listing})")
    if mixes:
        by_name = {e.name: e for e in entries}
        for m in mixes:
            if m not in by_name:
                why = skipped.get(m)
                raise AppError(f"{path}: mix {m!r} " + (f"cannot be served: {why}" if why else
                               "does not exist") + "; finished: " + ", ".join(by_name))
        entries = [by_name[m] for m in dict.fromkeys(mixes)]
    return entries, skipped
