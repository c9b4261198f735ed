"""``sweaug ablate RECIPE``: fine-tune on each data mix of a recipe, evaluate every mix (and the
model without fine-tuning) on the evaluation sets, and report WER with confidence intervals.

Layout: ``<out>/<recipe>/<mix>/`` (checkpoints, tensorboard, model, results.json), and
``<out>/<recipe>/report.md``, ``results.csv``, ``wer.png``. A mix whose results.json carries
the same recipe hash is not run again; a killed mix resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

from .ablate_recipe import Recipe, ShardSet, load, plan_text, resolve_sets

log = logging.getLogger("sweaug.ablate")
BASELINE = "baseline"


def eval_samples(ss: ShardSet, max_samples: int | None) -> Iterator[dict]:
    """The evaluation set's samples in manifest order (the first ``max_samples``)."""
    from .shards import iter_samples
    from .train.data import decode_flac

    n = 0
    for shard in ss.shards:
        for key, files in iter_samples(shard):
            if max_samples is not None and n >= max_samples:
                return
            meta = json.loads(files["json"])
            yield {"key": key, "audio": decode_flac(files["flac"]), "text": meta["text"]}
            n += 1


def data_description(mix, sets: dict[str, ShardSet]) -> dict:
    by_source: dict[str, dict] = {}
    for s in mix.data:
        ss = sets[s]
        d = by_source.setdefault(ss.source, {"samples": 0, "hours": 0.0, "augmented": 0})
        d["samples"] += ss.samples
        d["hours"] = round(d["hours"] + ss.hours, 4)
        d["augmented"] += ss.samples if ss.augmented else 0
    return {"sets": {s: w for s, w in mix.data.items()}, "by_source": by_source,
            "on_the_fly_augmentation": mix.augment}


def _evaluate(recipe: Recipe, model, fe, tok, sets: dict[str, ShardSet]) -> dict:
    from .train.evaluate import check_generation_config, evaluate_set

    check_generation_config(model, recipe.language, recipe.task)
    out = {}
    for s in recipe.eval_sets:
        out[s] = evaluate_set(model, tok, fe, eval_samples(sets[s], recipe.eval_max_samples),
                              language=recipe.language, task=recipe.task,
                              batch_size=recipe.eval_batch_size,
                              max_samples=recipe.eval_max_samples, bootstrap=recipe.bootstrap,
                              max_new_tokens=recipe.max_new_tokens,
                              seed=recipe.seed, total=sets[s].samples)
    return out


def run_recipe(path: Path, out: Path, corpus: Path | None = None, dry_run: bool = False,
               only: list[str] | None = None, echo=print) -> dict:
    from .shards import atomic_write_bytes

    recipe = load(path, corpus)
    corpus = recipe.corpus or Path("corpus")
    sets = resolve_sets(recipe, corpus)
    for m in recipe.mixes:
        if m.augment and not Path(m.augment).exists():
            from .ablate_recipe import AblationError
            raise AblationError(f"{recipe.path}: mix {m.name!r}: augment recipe {m.augment} "
                                f"does not exist")
    echo(plan_text(recipe, sets))
    if dry_run:
        return {}
    from .augment import load_recipe as load_augment
    for m in recipe.mixes:  # validated before any training starts
        if m.augment:
            load_augment(Path(m.augment))
    run_dir = Path(out) / recipe.name
    results = {}
    todo = [m for m in recipe.mixes if not only or m.name in only]
    if recipe.baseline:
        results[BASELINE] = _run_one(recipe, None, sets, run_dir / BASELINE, echo)
    for mix in todo:
        results[mix.name] = _run_one(recipe, mix, sets, run_dir / mix.name, echo)
    from .report import write_report
    rows = []
    for name in [BASELINE] * recipe.baseline + [m.name for m in recipe.mixes]:
        f = run_dir / name / "results.json"
        if f.exists():
            rows.append(json.loads(f.read_text()))
    paths = write_report(run_dir, rows, recipe.reference, recipe.eval_sets,
                         notes=[f"recipe {recipe.path} ({recipe.name}); model {recipe.model}",
                                "every evaluation forces language "
                                f"{recipe.language!r} and task {recipe.task!r}"])
    atomic_write_bytes(run_dir / "plan.txt", plan_text(recipe, sets).encode())
    echo("\n" + paths["report.md"].read_text())
    echo(f"report: {paths['report.md']}\ncsv: {paths['results.csv']}\nplot: {paths['wer.png']}")
    return results


def _run_one(recipe: Recipe, mix, sets, out: Path, echo) -> dict:
    from .shards import atomic_write_bytes
    from .train.finetune import load_whisper, train_mix

    name = mix.name if mix else BASELINE
    key = recipe.mix_hash(mix) if mix else recipe.mix_hash(
        type("M", (), {"data": {}, "augment": None, "lora": None, "training": {}})())
    f = out / "results.json"
    if f.exists():
        done = json.loads(f.read_text())
        if done.get("hash") == key:
            echo(f"{name}: finished earlier, skipped ({f})")
            return done
    if mix is None:
        seconds = recipe.mixes[0].training["seconds"]
        model, fe, tok = load_whisper(recipe.model, seconds, recipe.tiny, recipe.seed,
                                      recipe.language, recipe.task)
        train = None
    else:
        echo(f"{name}: training ({mix.training['max_steps']} steps)")
        train = train_mix(recipe, mix, sets, out)
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration
        from .whisper import load_tokenizer
        model = WhisperForConditionalGeneration.from_pretrained(str(out / "model"))
        fe = WhisperFeatureExtractor.from_pretrained(str(out / "model"))
        tok = load_tokenizer(str(out / "model"))
        tok.set_prefix_tokens(language=recipe.language, task=recipe.task)
    model.eval()
    echo(f"{name}: evaluating on {', '.join(recipe.eval_sets)}")
    result = {"mix": name, "baseline": mix is None, "hash": key, "model": recipe.model,
              "data": data_description(mix, sets) if mix else None, "train": train,
              "eval": _evaluate(recipe, model, fe, tok, sets)}
    atomic_write_bytes(f, json.dumps(result, ensure_ascii=False, indent=1, sort_keys=True).encode())
    return result
