"""``sweaug ablate RECIPE``: fine-tune on each data mix of a recipe, evaluate every mix (and the
model without fine-tuning) on the evaluation sets, and report WER with confidence intervals.

Layout: ``<out>/<recipe>/<mix>/`` (checkpoints, tensorboard, model, results.json), and
``<out>/<recipe>/run.json`` (what the recipe expects: every model and its hash),
``report.md``, ``results.csv``, ``wer.png``. A mix whose results.json carries the same recipe
hash is not run again; a killed mix resumes from its last complete checkpoint (one that a kill
while saving left incomplete is deleted, logged). Before anything trains, every shard the run
reads is checked (:func:`preflight`): a truncated shard or a sample without its ``.json`` fails
the run at once, naming the shard and the member.

``--mix NAME`` (repeatable) runs only those models; ``baseline`` names the model without
fine-tuning, which then runs only when asked for. That is how a recipe is split into cluster
jobs: one ``--mix`` per job, all writing into the same run folder, then ``sweaug report
RUN_DIR`` (:func:`report_run`) merges whatever has finished and names what has not.

Under ``torchrun`` / ``accelerate launch`` every rank trains each mix (DDP, see
``train/finetune.py``); then the process group is left, the other ranks exit, and rank 0 alone
evaluates, writes results.json and the report — no rank waits on a collective while rank 0
evaluates, and nothing is written twice.
"""
from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Iterator

from ..train.evaluate import eval_settings
from .recipe import LONG_FORM, Recipe, ShardSet, check_windows, load, plan_text, \
    resolve_sets, resolve_steps

log = logging.getLogger("sweaug.ablate")
BASELINE = "baseline"
RUN_FILE = "run.json"
RUN_FORMAT = "sweaug-ablation-run/1"


def eval_samples(ss: ShardSet, max_samples: int | None) -> Iterator[dict]:
    """The evaluation set's samples in manifest order (the first ``max_samples``)."""
    from ..train.evaluate import shard_samples

    return itertools.islice(shard_samples(ss.shards), max_samples)


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


def _evaluate(recipe: Recipe, mix, model, fe, tok, sets: dict[str, ShardSet]) -> dict:
    from ..train.evaluate import check_generation_config, evaluate_set

    check_generation_config(model, recipe.language, recipe.task)
    kw = eval_settings(recipe, mix, model)
    common = {"language": recipe.language, "task": recipe.task, "bootstrap": recipe.bootstrap,
              "seed": recipe.seed}
    out = {}
    for s in recipe.eval_sets:
        if sets[s].kind == "windows":  # timestamp error, window WER, hallucination rate
            from ..train.longform import evaluate_windows, window_samples
            out[s] = evaluate_windows(model, tok, fe, window_samples(sets[s].shards),
                                      batch_size=kw["batch_size"],
                                      max_samples=recipe.eval_max_samples, **common)
            continue
        out[s] = evaluate_set(model, tok, fe, eval_samples(sets[s], recipe.eval_max_samples),
                              max_samples=recipe.eval_max_samples, total=sets[s].samples,
                              **common, **kw)
    lf = recipe.long_form
    if lf:
        from ..train.longform import evaluate_long_form, stitch
        recordings = stitch(eval_samples(sets[lf["set"]], None), lf["recordings"],
                            lf["min_seconds"], lf["max_seconds"], recipe.seed)
        out[LONG_FORM] = {**evaluate_long_form(model, tok, fe, recordings,
                                               batch_size=kw["batch_size"], **common),
                          "from": lf["set"], "asked": dict(lf)}
    return out


def _hash(recipe: Recipe, mix) -> str:
    """The recipe's hash of a model (what run.json expects; :func:`report_run` tells stale
    results by it). The model's full hash adds what the device runs (:func:`plan_models`)."""
    return recipe.mix_hash(mix) if mix else recipe.mix_hash(
        type("M", (), {"data": {}, "augment": None, "lora": None, "training": {}})())


MODEL_FROM = {"tiny": "{name}: built here (random weights)",
              "folder": "{name}: from the folder {location}",
              "cache": "{name}: from the Hugging Face cache (snapshot {revision}; no request "
                       "to the Hub)",
              "hub": "{name}: downloaded from the Hub at its first load (revision {revision})"}


def device_text(plans: dict) -> str:
    """What this machine runs each model with (printed before anything starts)."""
    lines = ["on this machine:"]
    src = next((p["model_source"] for p in plans.values() if p.get("model_source")), None)
    if src:
        lines.append("  model " + MODEL_FROM[src["kind"]].format(**src))
    for name, p in plans.items():
        t, e = p["train"], p["eval"]
        if t:
            lines.append(f"  {name}: trains on {t['device_name']}, {t['precision']}, "
                         f"{t['optimizer']}, {t['attention']} attention, gradient "
                         f"checkpointing {'on' if t['gradient_checkpointing'] else 'off'}"
                         + "".join(f"; fallback {f}" for f in t["fallbacks"]))
        lines.append(f"  {name}: evaluates on {e['device_name']}, {e['precision']}")
    return "\n".join(lines)


def plan_models(recipe: Recipe, models: list, run_dir: Path, device: str = "auto",
                write: bool = True) -> dict:
    """What this machine runs each selected model with, and its full hash — checked for every
    model before the first one starts (the preflight): ``{name: {"train": plan or None,
    "eval": plan, "run_hash"}}``. Every problem of every model (no CUDA with ``--device cuda``,
    bf16 on an older GPU, bitsandbytes missing for an 8-bit optimizer on CUDA, an unknown
    optimizer, peft missing for LoRA, too little disk for the checkpoints, an output folder that
    cannot be written, a model that cannot be loaded here: :func:`~sweaug.train.pretrained.
    resolve`) is collected and raised as one :class:`AblationError`."""
    from .recipe import AblationError
    from ..train import device as dev
    from ..train.pretrained import ModelError, resolve

    machine = dev._machine()
    problems, plans, need = [], {}, []
    try:  # the config, feature extractor and tokenizer, before any plan depends on them
        source = resolve(recipe.model).as_dict()
    except ModelError as e:
        source = None
        problems.append(str(e))
    for mix in models:
        name = mix.name if mix else BASELINE
        train = None
        if mix is not None:
            train, found = dev.plan_training(mix.training, device, bool(mix.lora), machine)
            problems += [f"mix {name}: {p}" for p in found]
        ev = dev.plan_evaluation((mix or recipe.mixes[0]).training, device, machine)
        key = dev.run_key(_hash(recipe, mix), {"train": train, "eval": ev})
        plans[name] = {"train": train, "eval": ev, "run_hash": key, "model_source": source}
        if mix is not None and train is not None and not _finished(run_dir / name, key):
            need.append((name, mix, train))
    if need and source is not None:
        total = 0
        for name, mix, train in need:
            try:
                n, trainable = dev.parameter_counts(recipe.model, recipe.tiny,
                                                    mix.training["seconds"], mix.lora)
            except Exception as e:  # offline without the model's config, a bad model dir, ...
                problems.append(f"mix {name}: cannot read the configuration of model "
                                f"{recipe.model!r} ({type(e).__name__}: {e})")
                continue
            total += dev.checkpoint_bytes(n, trainable, train, bool(mix.lora))
        free = dev.free_bytes(run_dir)
        if total > free:
            problems.append(f"the checkpoints and models of the {len(need)} mix(es) to train "
                            f"need about {dev.gib(total)}; {run_dir} has {dev.gib(free)} free")
    if write:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / f".write-test-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            problems.append(f"cannot write to {run_dir} ({e.strerror or e})")
    if problems:
        raise AblationError("this machine cannot run the recipe as it stands (nothing was "
                            "trained or evaluated):\n  - " + "\n  - ".join(problems))
    return plans


def _selected(recipe: Recipe, only: list[str] | None) -> list:
    """The models to run, baseline (None) first: all of them, or those ``--mix`` names."""
    from .recipe import AblationError

    names = [m.name for m in recipe.mixes]
    if BASELINE in names:
        raise AblationError(f"{recipe.path}: a mix may not be named {BASELINE!r} (the name of "
                            f"the model without fine-tuning)")
    if only:
        known = ([BASELINE] if recipe.baseline else []) + names
        unknown = [n for n in only if n not in known]
        if BASELINE in unknown:
            raise AblationError(f"--mix {BASELINE}: {recipe.path} sets `baseline: false`")
        if unknown:
            raise AblationError(f"--mix {', '.join(unknown)}: no such mix in {recipe.path} "
                                f"(it has: {', '.join(known)})")
    base = recipe.baseline and (not only or BASELINE in only)
    return [None] * base + [m for m in recipe.mixes if not only or m.name in only]


def run_meta(recipe: Recipe, corpus: Path) -> dict:
    """What ``run.json`` holds: enough to rebuild the report from the run folder alone (and for
    ``sweaug view`` / the app to find the recipe and the corpus)."""
    models = [{"name": BASELINE, "hash": _hash(recipe, None), "baseline": True}] \
        * recipe.baseline + [{"name": m.name, "hash": _hash(recipe, m), "baseline": False}
                             for m in recipe.mixes]
    return {"format": RUN_FORMAT, "recipe": recipe.name,
            "recipe_path": str(Path(recipe.path).resolve()),
            "corpus": str(Path(corpus).resolve()), "model": recipe.model,
            "language": recipe.language, "task": recipe.task,
            "eval_sets": recipe.evaluated(), "reference": recipe.reference, "models": models}


def run_recipe(path: Path, out: Path, corpus: Path | None = None, dry_run: bool = False,
               only: list[str] | None = None, echo=print, device: str = "auto") -> dict:
    from ..files import atomic_write_bytes as atomic_write

    # torchrun / accelerate launch set RANK and WORLD_SIZE (the process group comes later,
    # with the training arguments)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    say = echo if rank == 0 else (lambda *a, **k: None)
    recipe = load(path, corpus)
    corpus = recipe.corpus or Path("corpus")
    sets = resolve_sets(recipe, corpus)
    resolve_steps(recipe, sets, world)  # num_train_epochs -> max_steps, before any hash
    for m in recipe.mixes:
        if m.augment and not Path(m.augment).exists():
            from .recipe import AblationError
            raise AblationError(f"{recipe.path}: mix {m.name!r}: augment recipe {m.augment} "
                                f"does not exist")
    check_windows(recipe, sets)
    models = _selected(recipe, only)
    say(plan_text(recipe, sets))
    preflight(sets, [s for m in models if m for s in m.data] + list(recipe.eval_sets)
              + ([recipe.long_form["set"]] if recipe.long_form else [])
              + [m.training["eval_during_training"] for m in models
                 if m and m.training.get("eval_during_training")], say)
    from ..augment import load_recipe as load_augment
    for m in recipe.mixes:  # validated before any training starts
        if m.augment:
            load_augment(Path(m.augment))
    run_dir = Path(out) / recipe.name
    if dry_run and importlib.util.find_spec("torch") is None:
        say("(what this machine would run each model with: needs the train extra)")
        return {}
    plans = plan_models(recipe, models, run_dir, device, write=not dry_run)
    say(device_text(plans))
    if dry_run:
        return {}
    if rank == 0:
        atomic_write(run_dir / RUN_FILE, json.dumps(run_meta(recipe, corpus), indent=1).encode())
    results, pending = {}, []
    for mix in models:  # every rank decides alike: no results.json is written before the end
        name = mix.name if mix else BASELINE
        plan = plans[name]
        done = _finished(run_dir / name, plan["run_hash"])
        if done:
            say(f"{name}: finished earlier, skipped (the same settings on the same kind of "
                f"device: {run_dir / name / 'results.json'})")
            results[name] = done
            continue
        earlier = _read_json(run_dir / name / "results.json") \
            if (run_dir / name / "results.json").exists() else None
        if earlier is not None:
            say(f"{name}: the results in {run_dir / name} are of other settings or another "
                f"kind of device ({_ran_text(earlier)}): running it again")
        train = None
        with torch_threads((mix or recipe.mixes[0]).training.get("torch_threads")):
            if mix is not None:
                from ..train.finetune import train_mix
                t = mix.training
                per_step = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] \
                    * world
                say(f"{name}: training ({t['max_steps']} steps"
                    + (f", {mix.epochs['num_train_epochs']:g} epochs of "
                       f"{mix.epochs['samples']} samples" if mix.epochs else "")
                    + (f" on {world} processes, {per_step} samples per step)" if world > 1
                       else ")")
                    + (f"; log: {run_dir / name / 'train_log.jsonl'}" if rank == 0 else ""))
                train = train_mix(recipe, mix, sets, run_dir / name, plan["train"],
                                  plan["run_hash"])
            if world == 1:
                results[name] = _evaluate_one(recipe, mix, sets, run_dir / name, train, say,
                                              plan)
            else:
                pending.append((mix, train))
    if world > 1:
        _leave_process_group()
        if rank != 0:
            print(f"rank {rank}: training finished; rank 0 evaluates and reports",
                  file=sys.stderr)
            return {}
        for mix, train in pending:
            name = mix.name if mix else BASELINE
            with torch_threads((mix or recipe.mixes[0]).training.get("torch_threads")):
                results[name] = _evaluate_one(recipe, mix, sets, run_dir / name, train, say,
                                              plans[name])
    atomic_write(run_dir / "plan.txt", plan_text(recipe, sets).encode())
    report_run(run_dir, echo=say)
    return results


def preflight(sets: dict[str, ShardSet], names: list[str], echo=print) -> None:
    """Check every shard the run will read (the selected mixes' training sets and the
    evaluation sets) before anything trains: a complete tar of the size and sample count its
    manifest records, every sample with its ``.flac`` and ``.json``
    (:func:`~sweaug.train.data.check_shard`, tar headers only). A bad shard fails the run here,
    naming the shard and the member, not hours later in a DataLoader worker or the evaluation."""
    from ..train.samples import check_shard

    names = list(dict.fromkeys(names))
    n = 0
    for name in names:
        ss = sets[name]
        expected = ss.expected or ({},) * len(ss.shards)
        for shard, exp in zip(ss.shards, expected):
            check_shard(shard, exp.get("bytes"), exp.get("samples"))
            n += 1
    echo(f"checked {n} shard(s) of {len(names)} set(s): complete")


@contextlib.contextmanager
def torch_threads(n: int | None):
    """``training.torch_threads``: torch's intra-op threads for one model's training and
    evaluation (None: leave torch's default), restored afterwards."""
    if n is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _finished(folder: Path, run_hash: str) -> dict | None:
    """The model's results.json when it was made with the same settings on the same kind of
    device (``run_hash``); results without one (an older sweaug) do not count."""
    f = folder / "results.json"
    if f.exists():
        done = _read_json(f)
        if done.get("run_hash") == run_hash:
            return done
    return None


def _ran_text(result: dict) -> str:
    ran = (result.get("train") or {}).get("ran_with") or result.get("evaluated_with")
    if not ran:
        return "not recorded"
    return ", ".join(f"{k} {ran[k]}" for k in ("device", "precision", "optimizer")
                     if ran.get(k) is not None)


def _read_json(f: Path) -> dict:
    from .recipe import AblationError
    from ..files import read_json_object

    return read_json_object(f, AblationError)


def _leave_process_group() -> None:
    """All ranks: wait for each other, then destroy the process group (if training made one)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _evaluate_one(recipe: Recipe, mix, sets, out: Path, train: dict | None, echo,
                  plan: dict | None = None) -> dict:
    """Evaluate one model — on CUDA in its training precision with SDPA attention
    (``plan["eval"]``, :func:`~sweaug.train.device.plan_evaluation`), else fp32 — and write
    its results.json (with both hashes and what it ran with)."""
    from ..train.device import plan_evaluation, run_key, torch_dtype
    from ..train.finetune import load_whisper

    name = mix.name if mix else BASELINE
    if plan is None:
        ev = plan_evaluation((mix or recipe.mixes[0]).training)
        plan = {"train": (train or {}).get("ran_with"), "eval": ev,
                "run_hash": run_key(_hash(recipe, mix), {"train": None, "eval": ev})}
    ev = plan["eval"]
    if mix is None:
        seconds = recipe.mixes[0].training["seconds"]
        model, fe, tok = load_whisper(recipe.model, seconds, recipe.tiny, recipe.seed,
                                      recipe.language, recipe.task, attention=ev["attention"])
    else:
        from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration
        from ..train.whisper import load_tokenizer
        model = WhisperForConditionalGeneration.from_pretrained(
            str(out / "model"), attn_implementation=ev["attention"])
        fe = WhisperFeatureExtractor.from_pretrained(str(out / "model"))
        tok = load_tokenizer(str(out / "model"))
        tok.set_prefix_tokens(language=recipe.language, task=recipe.task)
    model.to(device=ev["device"], dtype=torch_dtype(ev["precision"]))
    model.eval()
    echo(f"{name}: evaluating on {', '.join(recipe.evaluated())} ({ev['device']}, "
         f"{ev['precision']})")
    result = {"mix": name, "baseline": mix is None, "hash": _hash(recipe, mix),
              "run_hash": plan["run_hash"], "evaluated_with": {
                  **ev, "attention": model.config._attn_implementation},
              "model": recipe.model, "model_source": plan.get("model_source"),
              "data": data_description(mix, sets) if mix else None,
              "train": train, "eval": _evaluate(recipe, mix, model, fe, tok, sets)}
    from ..files import atomic_write_bytes
    atomic_write_bytes(out / "results.json",
                       json.dumps(result, ensure_ascii=False, indent=1, sort_keys=True).encode())
    return result


def _renormalize(rows: list[dict], language: str) -> list[str]:
    """Recompute, in the rows (in memory), the normalized WER of evaluations made under another
    normalizer than today's (an older sweaug: Whisper's BasicTextNormalizer, digits kept) from
    their stored ``refs``/``hyps``, so one report never mixes two definitions; returns
    ``"<model> on <set>"`` for each."""
    from ..train.evaluate import NORMALIZER, language_token, normalized_scores

    done = []
    for r in rows:
        for name, e in (r.get("eval") or {}).items():
            if e.get("normalizer") == NORMALIZER or e.get("refs") is None \
                    or e.get("hyps") is None:
                continue
            lang = e.get("language") or language_token(language)[2:-2]
            e.update(normalized_scores(e["refs"], e["hyps"], lang, e.get("bootstrap", 1000),
                                       e.get("seed", 0), e.get("alpha", 0.05)))
            done.append(f"{r['mix']} on {name}")
    return done


def report_run(run_dir: Path, echo=print) -> dict:
    """Rebuild ``report.md``, ``results.csv`` and ``wer.png`` of a run folder from the models
    that have finished (``<model>/results.json`` with the hash ``run.json`` expects); the
    report names those that have not (missing) or that a different recipe produced (stale).
    Returns ``{"paths", "finished", "missing", "stale"}``."""
    from .recipe import AblationError
    from .report import write_report

    run_dir = Path(run_dir)
    f = run_dir / RUN_FILE
    if not f.exists():
        raise AblationError(f"{run_dir}: no {RUN_FILE} — not a run folder of sweaug ablate "
                            f"(it is <out>/<recipe name>/ and appears when a run starts)")
    meta = _read_json(f)
    if meta.get("format") != RUN_FORMAT or not isinstance(meta.get("models"), list):
        raise AblationError(f"{f}: not a {RUN_FORMAT} file")
    rows, missing, stale = [], [], []
    for m in meta["models"]:
        res = run_dir / m["name"] / "results.json"
        if not res.exists():
            missing.append(m["name"])
            continue
        row = _read_json(res)
        if row.get("hash") != m["hash"]:
            stale.append(m["name"])
        else:
            rows.append(row)
    if not rows:
        raise AblationError(f"{run_dir}: no model has finished yet (no <model>/results.json "
                            f"from this recipe; expected: "
                            f"{', '.join(m['name'] for m in meta['models'])})")
    renormalized = _renormalize(rows, meta.get("language", "sv"))
    recipe_path = meta.get("recipe_path", "RECIPE")
    notes = [f"recipe {recipe_path} ({meta['recipe']}); model {meta['model']}",
             "every evaluation forces language "
             f"{meta['language']!r} and task {meta['task']!r}"]
    reference = meta.get("reference")
    finished = [r["mix"] for r in rows]
    if reference and reference not in finished:
        notes.append(f"the reference {reference!r} has not finished: "
                     + ("differences against the baseline instead" if BASELINE in finished
                        else "no paired differences yet"))
        reference = None
    kept = {}
    for r in rows:
        n = (r.get("train") or {}).get("kept_tokens")
        if n:
            kept.setdefault(n, []).append(r["mix"])
    for n, names in sorted(kept.items()):
        notes.append(f"{', '.join(names)}: trained with `vocabulary: transcripts`, so their eval "
                     f"loss is a softmax over the {n} tokens of their training transcripts (they "
                     f"never emit the others), not over the whole vocabulary like the baseline's")
    for r in rows:
        best = (r.get("train") or {}).get("best")
        if not best or best.get("step") is None:
            continue
        value = f"{100 * best['value']:.1f} %" if best["metric"] == "wer" \
            else f"{best['value']:.4g}"
        what = (f"eval {best['metric']} {value} on {best.get('set')} at step {best['step']}")
        stop = (f"; early stopping ended training at step {r['train']['steps']} of "
                f"{r['train'].get('max_steps')}" if best.get("stopped_early") else "")
        notes.append(f"{r['mix']}: evaluated during training, best {what}"
                     + (" — that checkpoint was loaded at the end of training, so its evaluation "
                        "here is of the best checkpoint, not the last step" if best.get("loaded")
                        else " (the model evaluated here is the last step's)") + stop)
    if renormalized:
        notes.append("normalized WER recomputed from the stored transcripts (evaluated under "
                     "another normalizer): " + ", ".join(renormalized))
    if missing:
        notes.append("not finished: " + ", ".join(missing) + f" — run `sweaug ablate "
                     f"{recipe_path} --mix NAME`, then `sweaug report {run_dir}`")
    if stale:
        notes.append("left out, results of other recipe settings (re-run them): "
                     + ", ".join(stale))
    paths = write_report(run_dir, rows, reference, meta["eval_sets"], notes,
                         missing=missing + stale)
    echo("\n" + paths["report.md"].read_text())
    echo(f"report: {paths['report.md']}\ncsv: {paths['results.csv']}\nplot: {paths['wer.png']}")
    if missing or stale:
        echo(f"not finished: {', '.join(missing + stale)}")
    return {"paths": paths, "finished": finished, "missing": missing, "stale": stale}
