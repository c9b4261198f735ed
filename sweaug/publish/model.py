"""``sweaug publish --model RUN_DIR/MIX``: a mix that ``sweaug ablate`` trained, as a Hugging
Face model repo that ``WhisperForConditionalGeneration.from_pretrained(repo_id)`` and
``WhisperProcessor.from_pretrained(repo_id)`` load (or, for a LoRA mix,
``PeftModel.from_pretrained(base, repo_id)``), with a model card that carries the run's results.

What a finished mix folder holds (``sweaug ablate``, ``train/finetune.py``)::

    runs/<recipe>/run.json                      the run: recipe, corpus, model, eval sets
    runs/<recipe>/results.csv, report.md        the report (``sweaug report``)
    runs/<recipe>/<mix>/results.json            written last: WER per evaluation set, what it
                                                ran with, the data, ``run_hash``
    runs/<recipe>/<mix>/model/                  save_pretrained: config.json, model.safetensors,
                                                generation_config.json, tokenizer and feature
                                                extractor files (a LoRA mix: LoRA merged in)
    runs/<recipe>/<mix>/checkpoints/<run_hash>/settings.json        the mix's training settings
    runs/<recipe>/<mix>/checkpoints/<run_hash>/checkpoint-<steps>/  the last checkpoint (a LoRA
                                                mix: adapter_config.json + adapter_model.*)

What is published (:func:`plan_model`):

* a full fine-tune: every file of ``model/`` (weights, configs, tokenizer, feature extractor);
* a LoRA mix: the adapter (``adapter_config.json`` + ``adapter_model.safetensors`` of the final
  checkpoint, or of the best one when training loaded it at the end: the very weights
  ``model/`` was merged from) with the tokenizer, feature extractor
  and generation config of ``model/``; ``merged=True`` (``--merged``) publishes ``model/``
  instead, the LoRA merged into the base (loads without peft). A ``model/`` that itself holds an
  adapter is published as an adapter;
* ``README.md``: the model card (:func:`render_model_card`).

A folder without ``results.json`` or without saved weights is refused, naming what is missing.
Staging (:func:`~.staging.stage`: hard links, generated files written to a temporary name and
renamed, synchronised in place) and the upload (``create_repo(repo_type="model")`` + the
uploader of :func:`~.upload._upload`) are the corpus publishing's own.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..files import read_json_object
from .planning import PublishError
from .staging import default_stage_dir, stage, staged_listing
from .upload import (_hub, check_remote_model, check_repo_id, connect, create_and_upload,
                     staged_lines)

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")
# model/ files that WhisperProcessor / the tokenizer / the feature extractor / generate read
PROCESSOR_FILES = ("preprocessor_config.json", "processor_config.json", "tokenizer.json",
                   "tokenizer_config.json", "vocab.json", "merges.txt", "normalizer.json",
                   "added_tokens.json", "special_tokens_map.json", "generation_config.json")
ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")
EXAMPLE_REPO = "someone/whisper-small-sv"


@dataclass
class ModelPlan:
    mix_dir: Path
    mix: str
    results: dict
    run: dict                          # run.json ({} when absent)
    settings: dict                     # the mix's training settings ({} when not found)
    kind: str                          # "model" or "adapter"
    files: dict[str, Path]             # path in the repo -> the file staged there
    base: str                          # the recipe's model (what was fine-tuned)
    base_hub: str | None               # its Hub id, when it is one
    notes: list[str] = field(default_factory=list)
    adapter_config: dict | None = None  # an adapter's config, as staged


@dataclass
class ModelPublishResult:
    repo_id: str
    stage: Path
    files: list[tuple[str, int]]
    kind: str
    base: str
    license: str
    linked: int
    copied: int
    notes: list[str]
    uploaded: bool = False
    url: str = ""
    upload_method: str = ""


def _settings(mix_dir: Path, results: dict, run: dict) -> tuple[dict, list[str]]:
    """The mix's training settings: ``checkpoints/<run_hash>/settings.json`` (written when the
    mix started training), else the recipe named by run.json when its mix still has the hash
    of results.json; ({}, note) when neither is there."""
    f = mix_dir / "checkpoints" / str(results.get("run_hash", "")) / "settings.json"
    if results.get("run_hash") and f.is_file():
        try:
            return json.loads(f.read_text(encoding="utf-8")), []
        except (OSError, ValueError):
            pass
    path = run.get("recipe_path")
    if path and Path(path).is_file():
        try:
            from ..ablate.recipe import load

            recipe = load(path)
            mix = next((m for m in recipe.mixes if m.name == mix_dir.name), None)
            if mix is not None and recipe.mix_hash(mix) == results.get("hash"):
                return {"model": recipe.model, "tiny": recipe.tiny, "seed": recipe.seed,
                        "data": mix.data, "augment": mix.augment, "lora": mix.lora,
                        "training": mix.training}, [f"training settings from {path}"]
        except Exception:  # noqa: BLE001 - a recipe changed since: settings unknown, said so
            pass
    return {}, ["the training settings were not found (no checkpoints/<run_hash>/settings.json "
                "and no recipe of the same hash): the card leaves them out"]


def _weights_problem(folder: Path) -> str | None:
    """What a full model folder lacks to load (None: nothing)."""
    if not (folder / "config.json").is_file():
        return "model/config.json"
    for w in ("model.safetensors", "pytorch_model.bin"):
        if (folder / w).is_file():
            return None
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                return f"a readable model/{index} ({e})"
            absent = sorted(s for s in shards if not (folder / s).is_file())
            return f"weight shard(s) model/{', model/'.join(absent)}" if absent else None
    return "model weights (model/model.safetensors)"


def _processor_problem(folder: Path) -> str | None:
    if not (folder / "preprocessor_config.json").is_file():
        return "the feature extractor (model/preprocessor_config.json)"
    if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.json").is_file()):
        return "the tokenizer (model/tokenizer.json)"
    return None


def _base_hub(results: dict, settings: dict) -> tuple[str, str | None]:
    base = str(settings.get("model") or results.get("model") or "")
    src = results.get("model_source") or {}
    if src.get("kind") in ("hub", "cache") and HUB_ID.match(str(src.get("name", ""))):
        return base, str(src["name"])
    if src.get("kind") in ("tiny", "folder"):
        return base, None
    return base, base if HUB_ID.match(base) and not Path(base).exists() else None


def plan_model(mix_dir: Path, merged: bool = False) -> ModelPlan:
    """What publishing the mix folder ``mix_dir`` (``runs/<recipe>/<mix>``) stages, read from
    its files only; a :class:`PublishError` naming what is missing when it holds no finished
    model."""
    mix_dir = Path(mix_dir)
    if not mix_dir.is_dir():
        raise PublishError(f"--model {mix_dir}: not a folder (expected a mix folder of "
                           f"`sweaug ablate`, runs/<recipe>/<mix>)")
    res_file, model_dir = mix_dir / "results.json", mix_dir / "model"
    if not res_file.is_file() and (mix_dir / "run.json").is_file():
        mixes = sorted(d.name for d in mix_dir.iterdir() if (d / "results.json").is_file()
                       and d.name != "baseline")
        raise PublishError(f"--model {mix_dir}: a run folder; name one of its mixes, "
                           f"{mix_dir}/MIX (finished: {', '.join(mixes) or 'none'})")
    if not res_file.is_file():
        saved = " (model/ is there: training ended, the evaluation did not)" \
            if model_dir.is_dir() else ""
        raise PublishError(f"{mix_dir}: no finished model to publish: results.json is "
                           f"missing{saved}; finish the mix with `sweaug ablate RECIPE --mix "
                           f"{mix_dir.name}` (is it a mix folder runs/<recipe>/<mix>?)")
    results = read_json_object(res_file, PublishError)
    if results.get("baseline"):
        raise PublishError(f"{mix_dir}: the baseline, the model without fine-tuning: nothing "
                           f"trained to publish (name a mix folder)")
    run = read_json_object(mix_dir.parent / "run.json", PublishError) \
        if (mix_dir.parent / "run.json").is_file() else {}
    settings, notes = _settings(mix_dir, results, run)
    if not run:
        notes.append(f"{mix_dir.parent} has no run.json: the card leaves out the run's other "
                     f"models and the corpus' licences")
    train = results.get("train") or {}
    best = train.get("best") or {}
    # the checkpoint model/ was made from: the best one when training loaded it at the end
    # (load_best_model_at_end), else the final one (the Trainer always saves the last step)
    name = best["checkpoint"] if best.get("loaded") and best.get("checkpoint") \
        else f"checkpoint-{train.get('steps')}"
    ckpt = mix_dir / "checkpoints" / str(results.get("run_hash", "")) / str(name)
    in_model = (model_dir / "adapter_config.json").is_file()
    lora = bool(settings.get("lora")) or in_model or (ckpt / "adapter_config.json").is_file()
    kind = "adapter" if lora and not merged else "model"
    if merged and in_model:
        raise PublishError(f"--merged: {model_dir} holds a LoRA adapter, not a merged model")
    if merged and not lora:
        raise PublishError(f"--merged: mix {mix_dir.name} was not trained with LoRA: its model "
                           f"is a full fine-tune (publish it without --merged)")
    missing = []
    if not model_dir.is_dir():
        missing.append("the saved model (model/)")
    else:
        if kind == "model":
            w = _weights_problem(model_dir)
            if w:
                missing.append(w)
        p = _processor_problem(model_dir)
        if p:
            missing.append(p)
    files: dict[str, Path] = {}
    adapter_config = None
    if kind == "adapter" and not missing:
        src = model_dir if in_model else ckpt
        rel = "model" if in_model else ckpt.relative_to(mix_dir).as_posix()
        weights = next((src / w for w in ADAPTER_WEIGHTS if (src / w).is_file()), None)
        if not (src / "adapter_config.json").is_file() or weights is None:
            gone = (f"{rel}/ (the checkpoint that holds the adapter)"
                    if not src.is_dir() else f"{rel}/adapter_config.json"
                    if not (src / "adapter_config.json").is_file()
                    else f"{rel}/adapter_model.safetensors")
            raise PublishError(f"{mix_dir}: no LoRA adapter to publish: {gone} is missing "
                               f"(deleted?); pass --merged to publish the merged model (model/) "
                               f"instead")
        adapter_config = read_json_object(src / "adapter_config.json", PublishError)
        files[weights.name] = weights
        for f in PROCESSOR_FILES:
            if (model_dir / f).is_file():
                files[f] = model_dir / f
    if missing:
        raise PublishError(f"{mix_dir}: no finished model to publish: missing "
                           + "; ".join(missing))
    if kind == "model":
        files = {f.name: f for f in sorted(model_dir.iterdir())
                 if f.is_file() and not f.name.startswith(".") and f.name != "README.md"}
    newest = max(f.stat().st_mtime for f in files.values())
    if kind == "model" and newest > res_file.stat().st_mtime + 1:
        raise PublishError(f"{mix_dir}: model/ is newer than results.json: the mix was trained "
                           f"again and not evaluated yet (killed, or still running?); finish it "
                           f"with `sweaug ablate RECIPE --mix {mix_dir.name}` first")
    base, hub = _base_hub(results, settings)
    if adapter_config is not None and hub:
        adapter_config = dict(adapter_config, base_model_name_or_path=hub)
    return ModelPlan(mix_dir, mix_dir.name, results, run, settings, kind, files, base, hub,
                     notes, adapter_config)


# --------------------------------------------------------------------------- the card

def _corpus_sources(run: dict) -> dict[str, dict]:
    """source name -> its manifest entry (release, licence, homepage), from the run's corpus;
    augmented sets' own entries too, by their folder name."""
    corpus = Path(run.get("corpus") or "")
    out: dict[str, dict] = {}
    try:
        m = json.loads((corpus / "manifest.json").read_text(encoding="utf-8"))
        out.update(m.get("sources") or {})
        for sub in corpus.iterdir():
            if sub.is_dir() and (sub / "manifest.json").is_file() and sub.name not in out:
                am = json.loads((sub / "manifest.json").read_text(encoding="utf-8"))
                entries = list((am.get("sources") or {}).values())
                if am.get("format") == "sweaug-augmented/1" and entries:
                    out[sub.name] = entries[0]
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    return out


def _training_sources(results: dict) -> list[str]:
    return sorted(((results.get("data") or {}).get("by_source") or {}))


def model_license(p: ModelPlan, given: str | None = None) -> str:
    """The model's licence: ``given`` (``--license``), else the one licence every training
    source shares (from the corpus manifest); a :class:`PublishError` asking for --license
    when the sources' licences differ or are unknown."""
    from .card import _license_id

    if given:
        if not LICENSE_ID.match(given):
            raise PublishError(f"--license {given!r}: expected a Hub licence id such as "
                               f"apache-2.0, cc-by-4.0, cc0-1.0, mit or other")
        return given
    entries = _corpus_sources(p.run)
    srcs = _training_sources(p.results)
    lic = {s: (entries.get(s) or {}).get("license") or "" for s in srcs}
    ids = {_license_id(v) for v in lic.values()}
    if srcs and len(ids) == 1 and not ids & {"unknown", "other"}:
        return ids.pop()
    shown = ", ".join(f"{s}: {v or 'unknown'}" for s, v in lic.items()) or "no sources recorded"
    raise PublishError(f"the model's licence cannot be taken from its training data ({shown}): "
                       f"pass --license, e.g. --license cc-by-4.0 (and check the base model's "
                       f"licence too)")


def _hub_dataset(source: str) -> str | None:
    from ..sources.catalog import load

    try:
        return (load(source).get("hub") or {}).get("repo_id")
    except Exception:  # noqa: BLE001 - a source without a catalog entry (local)
        return None


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _eval_sets(p: ModelPlan) -> list[str]:
    listed = list(p.run.get("eval_sets") or [])
    return listed + [s for s in (p.results.get("eval") or {}) if s not in listed]


def _origin(run: dict, folder: str) -> str:
    """The corpus source a shard-set folder comes from: itself, or for an augmented set
    (``cv-aug``) its manifest's ``input.source``, followed through augmented-of-augmented."""
    corpus, seen = Path(run.get("corpus") or ""), set()
    while folder not in seen:
        seen.add(folder)
        try:
            m = json.loads((corpus / folder / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return folder
        if m.get("format") != "sweaug-augmented/1":
            return folder
        folder = str((m.get("input") or {}).get("source") or folder)
    return folder


def card_data(p: ModelPlan, repo_id: str, license_id: str) -> dict:
    """The card's YAML front matter (huggingface_hub's ``ModelCardData``: model-index with the
    WER, in percent, of every evaluation set of results.json)."""
    from huggingface_hub import EvalResult, ModelCardData

    name = repo_id.split("/", 1)[1]
    lang = p.run.get("language") or next(
        (e.get("language") for e in (p.results.get("eval") or {}).values() if e.get("language")),
        "sv")
    results = []
    for es in _eval_sets(p):
        e = (p.results.get("eval") or {}).get(es) or {}
        folder, _, split = es.partition("/")
        hub = _hub_dataset(_origin(p.run, folder))
        n = f" (first {e['n']} of {e['n_total']} utterances)" if e.get("capped") else ""
        for key, label in (("wer", "WER"), ("nwer", "Normalized WER")):
            if _finite(e.get(key)):
                results.append(EvalResult(
                    task_type="automatic-speech-recognition",
                    task_name="Automatic Speech Recognition", dataset_type=hub or folder,
                    dataset_name=f"{es} (sweaug corpus)", dataset_split=split or None,
                    metric_type="wer", metric_value=round(100 * float(e[key]), 2),
                    metric_name=f"{label}{n}"))
    datasets = sorted({d for d in (_hub_dataset(s) for s in _training_sources(p.results)) if d})
    tags = ["whisper", "automatic-speech-recognition", "sweaug"]
    if p.kind == "adapter":
        tags += ["lora", "peft"]
    data = ModelCardData(
        language=lang, license=license_id, base_model=p.base_hub,
        library_name="peft" if p.kind == "adapter" else "transformers",
        pipeline_tag="automatic-speech-recognition", tags=tags, datasets=datasets or None,
        model_name=name, eval_results=results or None)
    return data.to_dict()


def _md(s) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def _pct(x) -> str:
    from ..ablate.report import _pct as pct

    try:
        return pct(float(x)) if x not in ("", None) else "—"
    except (TypeError, ValueError):
        return "—"


def _ci(lo, hi) -> str:
    from ..ablate.report import _ci as ci

    try:
        return ci(float(lo), float(hi))
    except (TypeError, ValueError):
        return "—"


def _csv_rows(run_dir: Path) -> list[dict] | None:
    f = run_dir / "results.csv"
    if not f.is_file():
        return None
    try:
        with f.open(newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None


def _row_of_results(mix: str, es: str, e: dict) -> dict:
    return {"mix": mix, "baseline": "false", "eval_set": es, "n": e.get("n", ""),
            "n_total": e.get("n_total", ""), "capped": "true" if e.get("capped") else "false",
            **{k: e.get(k, "") for k in ("wer", "wer_lo", "wer_hi", "nwer", "nwer_lo",
                                         "nwer_hi")}}


def results_lines(p: ModelPlan) -> list[str]:
    """The card's results: per evaluation set, the run's table (results.csv, the numbers of
    report.md) with this model's row in bold; this model's row from results.json when the
    report does not have it (yet)."""
    rows = _csv_rows(p.mix_dir.parent)
    lines = []
    if rows is None:
        lines += ["The run's report (results.csv) is not there (`sweaug report "
                  "RUN_DIR` writes it): this model's results alone, from its results.json.", ""]
        rows = []
    ref = next((r.get("reference") for r in rows if r.get("reference")), "")
    have = {(r["mix"], r["eval_set"]) for r in rows}
    outdated = False
    for es in _eval_sets(p):
        e = (p.results.get("eval") or {}).get(es)
        these = [r for r in rows if r.get("eval_set") == es]
        if (p.mix, es) not in have and e:
            these.append(_row_of_results(p.mix, es, e))
        for i, r in enumerate(these):  # a report older than this model's results.json
            if r["mix"] == p.mix and e and _finite(e.get("wer")) and not _same(r.get("wer"),
                                                                               e["wer"]):
                these[i], outdated = _row_of_results(p.mix, es, e), True
        if not these:
            continue
        lines += [f"### {es}", "",
                  "| Model | WER % | 95 % CI | Normalized WER % | 95 % CI | n |"
                  + (f" Δ WER vs {_md(ref)} (95 % CI) |" if ref else ""),
                  "|---|---:|---|---:|---|---:|" + ("---|" if ref else "")]
        for r in these:
            name = r["mix"] + (" (no fine-tuning)" if r.get("baseline") == "true" else "")
            if r["mix"] == p.mix:
                name = f"**{name} (this model)**"
            n = r.get("n") or "—"
            if r.get("capped") == "true" and r.get("n_total"):
                n = f"{n} of {r['n_total']}"
            cells = [_md(name), _pct(r.get("wer")), _ci(r.get("wer_lo"), r.get("wer_hi")),
                     _pct(r.get("nwer")), _ci(r.get("nwer_lo"), r.get("nwer_hi")), str(n)]
            if ref:
                if r["mix"] == ref:
                    d = "reference"
                elif r.get("diff") not in ("", None):
                    d = (f"{100 * float(r['diff']):+.1f} {_ci(r.get('diff_lo'), r.get('diff_hi'))}"
                         + (f" {r['verdict']}" if r.get("verdict") else ""))
                else:
                    d = ""
                cells.append(d)
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if rows and (outdated or any((p.mix, es) not in have for es in _eval_sets(p))):
        lines += ["This model's rows come from its results.json: the run's results.csv does "
                  "not have them (its results are of other recipe settings than run.json "
                  "expects, or the report predates them: `sweaug report RUN_DIR`).", ""]
    return lines


def _same(a, b: float) -> bool:
    try:
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    except (TypeError, ValueError):
        return False


def _training_settings_lines(p: ModelPlan) -> list[str]:
    s = p.settings
    if not s:
        return ["Not recorded (see the run folder).", ""]
    t = dict(s.get("training") or {})
    train = p.results.get("train") or {}
    lines = ["The recipe's settings of the mix (what the device actually ran, fallbacks "
             "included, is under *How it ran*):", "", "| Setting | Value |", "|---|---|"]
    rows = [("base model", f"`{p.base}`"), ("seed", s.get("seed"))]
    if s.get("tiny") and p.base == "tiny-random":
        rows.append(("tiny model", json.dumps(s["tiny"], sort_keys=True)))
    if s.get("lora"):
        rows.append(("LoRA", ", ".join(
            f"{k} {', '.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in sorted(s["lora"].items()))))
    rows += [(k, t[k]) for k in sorted(t)]
    if train.get("processes"):
        rows.append(("processes (DDP)", train["processes"]))
    if train.get("spec_augment"):
        rows.append(("SpecAugment", json.dumps(train["spec_augment"], sort_keys=True)))
    for k, v in rows:
        lines.append(f"| {_md(k)} | {_md(v)} |")
    return lines + [""]


def _ran_lines(p: ModelPlan) -> list[str]:
    from ..ablate.report import _dropped_text, _ran_with_text

    r, train = p.results, p.results.get("train") or {}
    ev = r.get("evaluated_with")
    lines = [f"* Trained with: {_ran_with_text(train.get('ran_with'))}."]
    if train.get("steps") is not None:
        lines.append(f"* Steps: {train['steps']}"
                     + (f", final training loss {train['train_loss']:.4f}"
                        if _finite(train.get("train_loss")) else "")
                     + (f", resumed from {train['resumed_from']}" if train.get("resumed_from")
                        else "") + ".")
    th = train.get("throughput") or {}
    if th.get("seconds"):
        lines.append(f"* Training time: {th['seconds']:.0f} s for {th.get('steps')} steps "
                     f"({th.get('samples')} samples per rank).")
    lines.append(f"* Training samples dropped: {_dropped_text(train)}.")
    lines.append(f"* Evaluated with: {_ran_with_text(ev)}.")
    return lines + [""]


def _data_lines(p: ModelPlan) -> list[str]:
    from ..ablate.report import training_text

    data = p.results.get("data") or {}
    entries = _corpus_sources(p.run)
    lines = [training_text(p.results) + ".", ""]
    if data.get("sets"):
        wsum = sum(data["sets"].values()) or 1.0
        lines += ["| Shard set | Sampling weight |", "|---|---:|"]
        lines += [f"| `{_md(k)}` | {v / wsum:.0%} |" for k, v in data["sets"].items()]
        lines.append("")
    by = data.get("by_source") or {}
    if by:
        lines += ["| Source | Samples | Hours | Release | Licence |", "|---|---:|---:|---|---|"]
        for src, d in sorted(by.items()):
            e = entries.get(src) or {}
            home = e.get("homepage")
            lic = e.get("license") or "unknown"
            lines.append(f"| {_md(src)} | {d.get('samples', '')} | "
                         f"{float(d.get('hours', 0)):.2f} | {_md(e.get('release') or '—')} | "
                         f"{_md(lic)}{f' ({home})' if home else ''} |")
        lines.append("")
    if data.get("on_the_fly_augmentation"):
        lines += [f"Every training sample was augmented as it was read, with the recipe "
                  f"`{Path(str(data['on_the_fly_augmentation'])).name}`.", ""]
    if p.run.get("corpus"):  # its local path stays out of a public card
        lines += ["The corpus was built with `sweaug build` (16 kHz mono FLAC WebDataset "
                  "shards, transcripts normalized by sweaug's normalizer); the evaluation sets "
                  "share no sentence and no speaker with the training data (the build's "
                  "leakage guard).", ""]
    return lines


def _usage_lines(p: ModelPlan, repo_id: str) -> list[str]:
    lang = p.run.get("language") or "sv"
    task = p.run.get("task") or "transcribe"
    seconds = (p.settings.get("training") or {}).get("seconds")
    common = ['audio, sr = sf.read("clip.wav", dtype="float32")  # 16 kHz mono',
              'features = processor(audio, sampling_rate=16000, return_tensors="pt")'
              '.input_features',
              f'ids = model.generate(features, language="{lang}", task="{task}")',
              "print(processor.batch_decode(ids, skip_special_tokens=True)[0])"]
    if p.kind == "model":
        code = ["import soundfile as sf",
                "from transformers import WhisperForConditionalGeneration, WhisperProcessor", "",
                f'processor = WhisperProcessor.from_pretrained("{repo_id}")',
                f'model = WhisperForConditionalGeneration.from_pretrained("{repo_id}")',
                *common]
        head = ["Transformers loads it as it is:"]
    else:
        if p.base_hub:
            base_lines = [f'base = WhisperForConditionalGeneration.from_pretrained("{p.base_hub}")']
            head = [f"The LoRA adapter of `{p.base_hub}`: peft puts it on the base model."]
        elif p.base == "tiny-random":
            tiny = p.settings.get("tiny") or {}
            args = ", ".join([f"seconds={float(seconds or 30):g}",
                              f"seed={p.settings.get('seed', 0)}"]
                             + [f"{k}={v!r}" for k, v in sorted(tiny.items())])
            base_lines = ["from sweaug.train.whisper import tiny_whisper", "",
                          f"base, _, _ = tiny_whisper({args})  # the random base, rebuilt"]
            head = ["The LoRA adapter of sweaug's tiny random Whisper (`tiny-random`, built by "
                    "`sweaug.train.whisper.tiny_whisper`, not on the Hub): peft puts it on the base "
                    "model rebuilt with the same seed."]
        else:
            base_lines = [f'base = WhisperForConditionalGeneration.from_pretrained("{p.base}")'
                          "  # the base model folder (not on the Hub)"]
            head = [f"The LoRA adapter of the model in the folder `{p.base}` (not on the Hub): "
                    f"peft puts it on that base model."]
        code = ["import soundfile as sf", "from peft import PeftModel",
                "from transformers import (GenerationConfig, WhisperForConditionalGeneration,",
                "                          WhisperProcessor)", "", *base_lines,
                f'model = PeftModel.from_pretrained(base, "{repo_id}")'
                "  # .merge_and_unload(): a plain Whisper",
                f'model.generation_config = GenerationConfig.from_pretrained("{repo_id}")',
                f'processor = WhisperProcessor.from_pretrained("{repo_id}")', *common]
    lines = head + ["", "```python", *code, "```", ""]
    if seconds and float(seconds) != 30:
        lines += [f"The model's audio window is {float(seconds):g} s (the feature extractor "
                  f"pads or cuts to it); longer audio needs chunking "
                  f"(`pipeline(..., chunk_length_s={float(seconds):g})`).", ""]
    return lines


def render_model_card(p: ModelPlan, repo_id: str, license_id: str) -> str:
    """The model card: YAML front matter (:func:`card_data`), what the model is, its results
    in the run, its training data, settings, what it ran with and how to load it.
    Deterministic: the same folder gives the same bytes (a re-run does not re-upload it)."""
    import yaml

    name = repo_id.split("/", 1)[1]
    meta = card_data(p, repo_id, license_id)
    front = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, width=1000)
    recipe = p.run.get("recipe") or p.mix_dir.parent.name
    lora = p.settings.get("lora")
    base = f"`{p.base_hub}`" if p.base_hub else f"`{p.base}`"
    what = (f"a LoRA adapter (r {lora.get('r', 32)}, alpha {lora.get('alpha', 64)}, on "
            f"{', '.join(lora.get('target_modules', ['q_proj', 'v_proj']))}) for {base}"
            if p.kind == "adapter" and lora else
            f"a LoRA adapter for {base}" if p.kind == "adapter" else
            f"{base} fine-tuned" + (" with LoRA, merged into the weights" if lora else ""))
    lang = p.run.get("language") or "sv"
    task = p.run.get("task") or "transcribe"
    lines = ["---", front.rstrip("\n"), "---", "", f"# {name}", "",
             f"Whisper for Swedish speech recognition: {what}, trained by `sweaug ablate` as "
             f"the mix `{p.mix}` of the recipe `{recipe}` (sweaug's data-mix ablations).", "",
             "## Results", "",
             f"WER and normalized WER in percent with 95 % bootstrap confidence intervals, "
             f"from the run's report: this model and the run's other models, on the same "
             f"utterances (every evaluation forces language `{lang}` and task `{task}`). "
             f"*Normalized WER* compares lowercase text without punctuation, numbers as words "
             f"(`sweaug.build.text.normalized_text`). Δ is the paired difference against the "
             f"run's reference mix (negative: fewer errors).", ""]
    lines += results_lines(p)
    lines += ["## Training data", ""] + _data_lines(p)
    lines += ["## Training settings", ""] + _training_settings_lines(p)
    lines += ["## How it ran", ""] + _ran_lines(p)
    lines += ["## Usage", ""] + _usage_lines(p, repo_id)
    entries = _corpus_sources(p.run)
    used = ", ".join(f"{s} {(entries.get(s) or {}).get('license') or 'unknown'}"
                     for s in _training_sources(p.results)) or "not recorded"
    lines += ["## Licence", "", f"`{license_id}`. Training data: {used}"
              + (f"; the base model {base}'s own licence applies too." if p.base_hub else "."),
              ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ------------------------------------------------------------------------- publishing

def publish_model(mix_dir: Path, repo_id: str, *, private: bool = False, dry_run: bool = False,
                  stage_dir: Path | None = None, merged: bool = False,
                  license: str | None = None, api=None,
                  progress: Callable[[str], None] | None = None) -> ModelPublishResult:
    """Stage the trained mix ``mix_dir`` as the model repo ``repo_id`` and (unless
    ``dry_run``) upload it. ``api`` replaces ``huggingface_hub.HfApi(token=...)`` (tests)."""
    say = progress or (lambda m: None)
    check_repo_id(repo_id, EXAMPLE_REPO)
    p = plan_model(Path(mix_dir), merged)
    lic = model_license(p, license)
    token = None
    if not dry_run:
        token, api = connect(api)
    want: dict[str, Path | bytes] = dict(p.files)
    want["README.md"] = render_model_card(p, repo_id, lic).encode()
    if p.adapter_config is not None:
        want["adapter_config.json"] = (json.dumps(p.adapter_config, indent=2, sort_keys=True)
                                       + "\n").encode()
    if not dry_run:
        say(f"checking {repo_id} on the Hub")
        _hub(lambda: check_remote_model(api, repo_id, set(want)), token,
             f"reading {repo_id} from the Hub failed")
    sdir = Path(stage_dir) if stage_dir else default_stage_dir(p.mix_dir, repo_id)
    try:
        linked, copied = stage(want, sdir, repo_id)
    except OSError as e:
        raise PublishError(f"staging failed: {type(e).__name__}: {e}") from None
    result = ModelPublishResult(repo_id, sdir, staged_listing(sdir), p.kind, p.base_hub or p.base,
                                lic, linked, copied, list(p.notes))
    if dry_run:
        return result
    return create_and_upload(api, token, repo_id, sdir, private, "model", result, say)


def format_model_result(r: ModelPublishResult, dry_run: bool) -> str:
    what = "a LoRA adapter of" if r.kind == "adapter" else "a model fine-tuned from"
    lines = [f"note: {n}" for n in r.notes]
    lines.append(f"{what} {r.base}, licence {r.license}")
    lines += staged_lines(r, dry_run, "sweaug publish --model", f"https://huggingface.co/{r.repo_id}")
    return "\n".join(lines)
