"""Ablation recipes (``recipes/ablation/*.yaml``): schema, validation and the plan.

The schema is checked first — every key, naming the offending key and its line — before any
file is looked at; then the shard sets are resolved against the corpus (``<source>/<split>``,
e.g. ``cv/train`` or ``cv-aug/train``) from the manifests, and the plan (mixes, shard sets,
samples and hours per source, steps, evaluation sets) is what ``--dry-run`` prints.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..records import ConfigError

# the seed's improved settings (the defaults of every mix)
TRAINING_DEFAULTS = {
    "per_device_train_batch_size": 16, "gradient_accumulation_steps": 2,
    "learning_rate": 1e-5, "lr_scheduler_type": "linear", "warmup_steps": 500,
    "max_steps": 4000, "fp16": True, "gradient_checkpointing": True, "optim": "adamw_bnb_8bit",
    "dropout": 0.1, "weight_decay": 0.0, "logging_steps": 25, "save_steps": 1000,
    "per_device_eval_batch_size": 8, "generation_max_length": 225, "seconds": 30.0,
    "dataloader_num_workers": 2, "shuffle_buffer": 500,
}
TRAINING_TYPES = {k: (float, int) if isinstance(v, float) else type(v)
                  for k, v in TRAINING_DEFAULTS.items()}
TRAINING_TYPES["seconds"] = (float, int)
# optional, not in the defaults (so the hashes of recipes without them are unchanged):
# the softmax's tokens (train/vocab.py) and torch's CPU threads for this mix's training and
# evaluation (results depend on the thread count: a recipe that sets it reproduces them
# whichever machine or process runs it)
TRAINING_TYPES["vocabulary"] = str
TRAINING_TYPES["torch_threads"] = int
# bf16 instead of fp16 (Ampere or newer; the preflight refuses it on an older GPU); reentrant
# activation checkpointing (torch's older implementation; LoRA works with either, see
# finetune.py); SpecAugment, Whisper's own masking of the log-mel input in training
# (WhisperConfig's keys of the same names: off unless apply_spec_augment is true)
TRAINING_TYPES.update({"bf16": bool, "checkpointing_reentrant": bool, "apply_spec_augment": bool,
                       "mask_time_prob": (float, int), "mask_time_length": int,
                       "mask_time_min_masks": int, "mask_feature_prob": (float, int),
                       "mask_feature_length": int, "mask_feature_min_masks": int})
# optional, not in the defaults either (issue #19, point 8): epochs instead of max_steps
# (converted to steps from the mix's samples: resolve_steps), evaluation during training and
# the best checkpoint (finetune.eval_arguments)
TRAINING_TYPES.update({"num_train_epochs": (float, int), "eval_steps": int,
                       "eval_during_training": str, "eval_during_training_max_samples": int,
                       "metric_for_best_model": str, "load_best_model_at_end": bool,
                       "early_stopping_patience": int})
# what eval_steps brings along (into the mix's settings, and so its hash, only with eval_steps;
# eval_during_training: the recipe's first evaluation set)
EVAL_TRAINING_DEFAULTS = {"eval_during_training_max_samples": 200,
                          "metric_for_best_model": "loss", "load_best_model_at_end": False}
EVAL_TRAINING_KEYS = ("eval_during_training", "eval_during_training_max_samples",
                      "metric_for_best_model", "load_best_model_at_end",
                      "early_stopping_patience")
TRAINING_CHOICES = {"vocabulary": ("full", "transcripts"),
                    "metric_for_best_model": ("loss", "wer")}
TRAINING_TYPES["learning_rate"] = (float, int)
# lower bounds of the numeric training settings: (bound, whether the bound itself is allowed)
TRAINING_MIN = {k: (0, False) for k in (
    "per_device_train_batch_size", "gradient_accumulation_steps", "learning_rate", "max_steps",
    "logging_steps", "save_steps", "per_device_eval_batch_size", "generation_max_length",
    "seconds", "torch_threads", "num_train_epochs", "eval_steps",
    "eval_during_training_max_samples", "early_stopping_patience")}
TRAINING_MIN.update({k: (0, True) for k in (
    "warmup_steps", "dropout", "weight_decay", "dataloader_num_workers", "shuffle_buffer",
    "mask_time_prob", "mask_feature_prob", "mask_time_min_masks", "mask_feature_min_masks")})
TRAINING_MIN.update({k: (0, False) for k in ("mask_time_length", "mask_feature_length")})
TRAINING_MAX = {"mask_time_prob": 1, "mask_feature_prob": 1, "dropout": 1}
TINY_KEYS = {"d_model": int, "layers": int, "heads": int, "max_target_positions": int}
LORA_KEYS = {"r": int, "alpha": int, "dropout": (float, int), "target_modules": list}
MIX_KEYS = {"name": str, "data": dict, "augment": str, "lora": dict, "training": dict,
            "description": str}
TOP_KEYS = {"name": str, "description": str, "model": str, "tiny": dict, "language": str,
            "task": str, "corpus": str, "seed": int, "training": dict, "evaluation": dict,
            "reference": str, "mixes": list, "baseline": bool,
            "eval_max_samples": int}  # the same as evaluation.max_samples
EVAL_KEYS = {"sets": list, "max_samples": int, "batch_size": int, "bootstrap": int,
             "max_new_tokens": int, "long_form": dict}
#: evaluation.long_form: held-out test utterances stitched into recordings (train/longform.py)
LONG_FORM_KEYS = {"set": str, "recordings": int, "min_seconds": (float, int),
                  "max_seconds": (float, int)}
LONG_FORM_DEFAULTS = {"recordings": 20, "min_seconds": 60.0, "max_seconds": 300.0}
LONG_FORM = "long-form"  # its name among the evaluation results


class AblationError(ConfigError):
    """A recipe problem: the message names the file, line and key."""


@dataclass
class Mix:
    name: str
    data: dict[str, float]  # shard set -> weight
    augment: str | None = None
    lora: dict | None = None
    training: dict = field(default_factory=dict)  # defaults merged with overrides
    # num_train_epochs as steps (resolve_steps): {"num_train_epochs", "samples",
    # "samples_per_step", "max_steps"}; None: the recipe gives max_steps
    epochs: dict | None = None


@dataclass
class Recipe:
    path: Path
    name: str
    model: str
    language: str
    task: str
    seed: int
    mixes: list[Mix]
    eval_sets: list[str]
    eval_max_samples: int | None
    eval_batch_size: int | None  # evaluation.batch_size; None: each mix's per_device_eval_batch_size
    bootstrap: int
    max_new_tokens: int | None
    reference: str | None
    corpus: Path | None
    tiny: dict
    baseline: bool = True
    description: str = ""
    long_form: dict | None = None  # evaluation.long_form with its defaults

    def mix_hash(self, mix: Mix) -> str:
        """What decides a mix's result: a finished mix with the same hash is not run again."""
        parts = [self.model, self.tiny, self.language, self.task, self.seed, mix.data,
                 mix.augment, mix.lora, mix.training, self.eval_sets, self.eval_max_samples,
                 self.eval_batch_size, self.max_new_tokens]
        if self.long_form:  # appended only when set: earlier runs keep their hashes
            parts.append(self.long_form)
        return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()
                              ).hexdigest()[:16]

    def evaluated(self) -> list[str]:
        """The evaluation results' names: the sets, then ``long-form`` when configured."""
        return list(self.eval_sets) + ([LONG_FORM] if self.long_form else [])


def _check(node_map: dict, allowed: dict, where: str, path: Path, lines: dict) -> None:
    for key, value in node_map.items():
        line = lines.get(key, "?")
        if key not in allowed:
            raise AblationError(f"{path}:{line}: unknown key {where}{key!r} "
                                f"(allowed: {', '.join(sorted(allowed))})")
        want = allowed[key]
        if value is not None and not isinstance(value, want if isinstance(want, tuple) else (want,)) \
                or (isinstance(value, bool) and want in (int, (float, int))):
            raise AblationError(f"{path}:{line}: {where}{key} must be "
                                f"{getattr(want, '__name__', 'a number')}, got {value!r}")
        if where.endswith("training.") and key in TRAINING_CHOICES \
                and value not in TRAINING_CHOICES[key]:
            raise AblationError(f"{path}:{line}: {where}{key} must be one of "
                                f"{', '.join(TRAINING_CHOICES[key])}, got {value!r}")
        if where.endswith("training.") and key in TRAINING_MIN and value is not None:
            low, inclusive = TRAINING_MIN[key]
            if value < low or (value == low and not inclusive):
                raise AblationError(f"{path}:{line}: {where}{key} must be "
                                    f"{'>=' if inclusive else '>'} {low}, got {value!r}")
        if where.endswith("training.") and key in TRAINING_MAX and value is not None \
                and value > TRAINING_MAX[key]:
            raise AblationError(f"{path}:{line}: {where}{key} must be <= {TRAINING_MAX[key]}, "
                                f"got {value!r}")


def _merge_training(base: dict, over: dict, where: str, path: Path, lines: dict) -> dict:
    """``base`` with one mapping's ``training`` settings on top. ``num_train_epochs`` and
    ``max_steps`` are exclusive in one mapping; across the two levels the mix's own wins (a
    mix's ``max_steps`` drops the recipe's ``num_train_epochs`` and the other way round), so a
    mix with epochs has ``max_steps: None`` until :func:`resolve_steps`. The keys of epochs and
    of evaluation during training set to null are unset."""
    if over.get("num_train_epochs") is not None and over.get("max_steps") is not None:
        raise AblationError(f"{path}:{lines.get('num_train_epochs', '?')}: {where}"
                            f"num_train_epochs and {where}max_steps (line "
                            f"{lines.get('max_steps', '?')}) are exclusive: give one")
    epochs = over.get("num_train_epochs")
    if epochs is not None and not math.isfinite(epochs):
        raise AblationError(f"{path}:{lines.get('num_train_epochs', '?')}: {where}"
                            f"num_train_epochs must be a finite number, got {epochs!r}")
    t = dict(base)
    if over.get("max_steps") is not None:
        t.pop("num_train_epochs", None)
    t.update(over)
    if t.get("num_train_epochs") is not None:
        t["max_steps"] = None
    for k in ("num_train_epochs", "eval_steps") + EVAL_TRAINING_KEYS:
        if k in t and t[k] is None:
            del t[k]
    return t


def _check_eval_training(mix: Mix, where: dict, eval_sets: list, path: Path) -> None:
    """Evaluation during training: its keys need ``eval_steps``; with it, the defaults
    (:data:`EVAL_TRAINING_DEFAULTS`, ``eval_during_training``: the first evaluation set) are
    merged in; ``load_best_model_at_end`` keeps the best checkpoint, so checkpoints must fall on
    evaluation steps (``save_steps`` a multiple of ``eval_steps``)."""
    t = mix.training

    def at(key):
        w, line = where.get(key, ("training.", "?"))
        return f"{path}:{line}: {w}{key}"

    if not t.get("eval_steps"):
        for k in EVAL_TRAINING_KEYS:
            if k in t:
                raise AblationError(f"{at(k)} needs training.eval_steps (how often to evaluate "
                                    f"during training; mix {mix.name!r} sets none)")
        return
    for k, v in EVAL_TRAINING_DEFAULTS.items():
        t.setdefault(k, v)
    t.setdefault("eval_during_training", eval_sets[0])
    if t["eval_during_training"].count("/") != 1:
        raise AblationError(f"{at('eval_during_training')} must be a shard set "
                            f"<source>/<split>, e.g. cv/dev, got {t['eval_during_training']!r}")
    if t["load_best_model_at_end"] and t["save_steps"] % t["eval_steps"]:
        raise AblationError(f"{at('load_best_model_at_end')} keeps the best evaluated "
                            f"checkpoint, so save_steps ({t['save_steps']}) must be a multiple "
                            f"of eval_steps ({t['eval_steps']}) in mix {mix.name!r}")


def resolve_steps(recipe: Recipe, sets: dict, world: int = 1) -> None:
    """Convert each mix's ``num_train_epochs`` into ``max_steps``, in its settings (and so its
    hash): ``ceil(epochs x samples / samples_per_step)``, the samples being those of the mix's
    shard sets together and a step ``per_device_train_batch_size x gradient_accumulation_steps
    x world`` (processes) samples — the stream is endless (train/mix.py), so an epoch is a step
    count. Recorded in ``mix.epochs``; a mix with ``max_steps`` is left as it is."""
    for m in recipe.mixes:
        t = m.training
        if t.get("num_train_epochs") is None:
            continue
        samples = sum(sets[s].samples for s in m.data)
        per_step = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"] * world
        steps = max(1, math.ceil(t["num_train_epochs"] * samples / per_step - 1e-9))
        t["max_steps"] = steps
        m.epochs = {"num_train_epochs": t["num_train_epochs"], "samples": samples,
                    "samples_per_step": per_step, "max_steps": steps}


def _lines(node) -> dict:
    import yaml
    return {k.value: k.start_mark.line + 1 for k, _ in node.value} \
        if isinstance(node, yaml.MappingNode) else {}


def _child(node, key):
    import yaml
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == key:
                return v
    return None


def load(path: str | Path, corpus: str | Path | None = None) -> Recipe:
    """Parse and check the schema (no file besides the recipe is read)."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        root = yaml.compose(text)
        data = yaml.safe_load(text)
    except OSError as e:
        raise AblationError(f"cannot read recipe {path}: {e.strerror or e}") from None
    except yaml.YAMLError as e:
        raise AblationError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise AblationError(f"{path}:1: a recipe is a mapping (name, model, mixes, ...)")
    _check(data, TOP_KEYS, "", path, _lines(root))
    for req in ("name", "mixes"):
        if req not in data:
            raise AblationError(f"{path}: missing required key {req!r}")
    tr_node, ev_node = _child(root, "training"), _child(root, "evaluation")
    top_lines = _lines(tr_node)
    _check(data.get("training") or {}, TRAINING_TYPES, "training.", path, top_lines)
    base_training = _merge_training(dict(TRAINING_DEFAULTS), data.get("training") or {},
                                    "training.", path, top_lines)
    origin = {k: ("training.", top_lines.get(k, "?")) for k in data.get("training") or {}}
    ev = dict(data.get("evaluation") or {})
    _check(ev, EVAL_KEYS, "evaluation.", path, _lines(ev_node))
    if data.get("eval_max_samples") is not None:
        ev.setdefault("max_samples", data["eval_max_samples"])
    _check(data.get("tiny") or {}, TINY_KEYS, "tiny.", path, _lines(_child(root, "tiny")))
    mixes_node = _child(root, "mixes")
    if not data["mixes"]:
        raise AblationError(f"{path}:{mixes_node.start_mark.line + 1}: `mixes` is empty")
    mixes, names, wheres = [], set(), []
    for i, m in enumerate(data["mixes"]):
        mnode = mixes_node.value[i]
        line = mnode.start_mark.line + 1
        if not isinstance(m, dict):
            raise AblationError(f"{path}:{line}: each mix is a mapping with name and data")
        _check(m, MIX_KEYS, f"mixes[{i}].", path, _lines(mnode))
        name = m.get("name")
        if not name or name in names or "/" in name:
            raise AblationError(f"{path}:{line}: mixes[{i}] needs a unique name without '/'")
        names.add(name)
        weights = m.get("data") or {}
        if not weights:
            raise AblationError(f"{path}:{line}: mix {name!r} has no data")
        for set_name, w in weights.items():
            if not isinstance(w, (int, float)) or isinstance(w, bool) or not math.isfinite(w) \
                    or w <= 0:
                raise AblationError(f"{path}:{line}: mix {name!r}: weight of {set_name!r} must be "
                                    f"a positive number, got {w!r}")
            if set_name.count("/") != 1:
                raise AblationError(f"{path}:{line}: mix {name!r}: shard set {set_name!r} must be "
                                    f"<source>/<split>, e.g. cv/train")
        mix_lines = _lines(_child(mnode, "training"))
        _check(m.get("training") or {}, TRAINING_TYPES, f"mixes[{i}].training.", path,
               mix_lines)
        training = _merge_training(base_training, m.get("training") or {},
                                   f"mixes[{i}].training.", path, mix_lines)
        where = {**origin, **{k: (f"mixes[{i}].training.", mix_lines.get(k, "?"))
                              for k in m.get("training") or {}}}
        if m.get("lora") is not None:
            _check(m["lora"], LORA_KEYS, f"mixes[{i}].lora.", path, _lines(_child(mnode, "lora")))
        augment = m.get("augment")
        if augment:  # relative to the recipe file, like every path in a recipe, or a bundled
            # augmentation recipe's name (`sweaug recipes`)
            from ..bundled import bundled

            file = (path.parent / Path(augment).expanduser()).resolve()
            if not file.exists() and augment in bundled("augment"):
                file = bundled("augment")[augment]
            augment = str(file)
        mixes.append(Mix(name, {k: float(v) for k, v in weights.items()}, augment,
                         m.get("lora"), training))
        wheres.append(where)
    ref = data.get("reference")
    if ref is not None and ref not in names:
        raise AblationError(f"{path}: reference {ref!r} is not one of the mixes "
                            f"({', '.join(sorted(names))})")
    sets = ev.get("sets") or []
    if not sets or not all(isinstance(s, str) and s.count("/") == 1 for s in sets):
        raise AblationError(f"{path}: evaluation.sets must list shard sets like cv/test")
    for mix, where in zip(mixes, wheres):
        _check_eval_training(mix, where, sets, path)
    long_form = None
    if ev.get("long_form") is not None:
        lf_lines = _lines(_child(ev_node, "long_form"))
        _check(ev["long_form"], LONG_FORM_KEYS, "evaluation.long_form.", path, lf_lines)
        long_form = {"set": sets[0], **LONG_FORM_DEFAULTS, **ev["long_form"]}
        long_form["min_seconds"] = float(long_form["min_seconds"])
        long_form["max_seconds"] = float(long_form["max_seconds"])
        if not (long_form["recordings"] >= 1
                and 0 < long_form["min_seconds"] <= long_form["max_seconds"]):
            raise AblationError(f"{path}:{lf_lines.get('recordings', '?')}: evaluation.long_form "
                                f"needs recordings >= 1 and 0 < min_seconds <= max_seconds")
        if long_form["set"].count("/") != 1:
            raise AblationError(f"{path}: evaluation.long_form.set must name a shard set like "
                                f"cv/test")
    corpus_path = corpus or data.get("corpus")
    model = data.get("model", "openai/whisper-small")
    if model.startswith(("./", "../", "~")) or (path.parent / model).is_dir():
        # a folder, relative to the recipe file like every path in a recipe (a Hub id such as
        # openai/whisper-small is one only when no folder of that name is beside the recipe)
        model = str((path.parent / Path(model).expanduser()).resolve())
    return Recipe(path, data["name"], model,
                  data.get("language", "sv"), data.get("task", "transcribe"),
                  int(data.get("seed", 42)), mixes, sets, ev.get("max_samples"),
                  ev.get("batch_size"), int(ev.get("bootstrap", 1000)),
                  ev.get("max_new_tokens"), ref,
                  Path(corpus_path) if corpus_path else None, data.get("tiny") or {},
                  bool(data.get("baseline", True)), data.get("description", ""), long_form)


@dataclass
class ShardSet:
    name: str  # <source>/<split>
    shards: list[Path]
    samples: int
    hours: float
    augmented: bool
    source: str  # the source it derives from (cv for cv-aug)
    # per shard, what its manifest says: {"bytes", "samples"} (for the preflight check)
    expected: tuple = ()
    kind: str = "sentences"  # or "windows" (`sweaug windows` output)
    window_seconds: float = 0.0  # the windows' length (windows only)


def resolve_sets(recipe: Recipe, corpus: Path) -> dict[str, ShardSet]:
    """Every shard set the recipe names, from the corpus manifests (shards must exist)."""
    corpus = Path(corpus)
    if not (corpus / "manifest.json").exists():
        raise AblationError(f"corpus {corpus} has no manifest.json (build it with sweaug build, "
                            f"or pass --corpus)")
    wanted = sorted({s for m in recipe.mixes for s in m.data} | set(recipe.eval_sets)
                    | ({recipe.long_form["set"]} if recipe.long_form else set())
                    | {m.training["eval_during_training"] for m in recipe.mixes
                       if m.training.get("eval_during_training")})
    # what is scored as sentences: evaluation during training and the long-form recordings
    # (a window set in evaluation.sets gets the window metrics: train/longform.py)
    as_sentences = ({m.training["eval_during_training"] for m in recipe.mixes
                     if m.training.get("eval_during_training")}
                    | ({recipe.long_form["set"]} if recipe.long_form else set()))
    out = {}
    for name in wanted:
        folder, split = name.split("/")
        kind, seconds = "sentences", 0.0
        top = json.loads((corpus / "manifest.json").read_text())
        if folder in top["sources"]:
            base, info, aug, src = corpus, top["sources"][folder], False, folder
        elif (corpus / folder / "manifest.json").exists():
            m = json.loads((corpus / folder / "manifest.json").read_text())
            if m.get("format") == "sweaug-windows/1" and name in as_sentences:
                raise AblationError(
                    f"shard set {name!r}: {corpus / folder} holds `sweaug windows` output, which "
                    f"is evaluated with the window metrics in evaluation.sets only: name a "
                    f"sentence set (e.g. {m.get('input', {}).get('source', 'cv')}/test) for "
                    f"eval_during_training and evaluation.long_form.set")
            base, info = corpus / folder, m["sources"][folder]
            aug, src = m.get("format") == "sweaug-augmented/1", m.get("input", {}).get("source", folder)
            if m.get("format") == "sweaug-windows/1":
                kind, seconds = "windows", float(m["windows"]["seconds"])
        else:
            raise AblationError(f"shard set {name!r}: no source {folder!r} in {corpus}")
        if info.get("unlabelled"):  # no transcripts to train or score on (build's local.py)
            from ..build.manifest import unlabelled_message
            raise AblationError(f"shard set {name!r}: {unlabelled_message(corpus / folder)}")
        if split not in info["splits"]:
            raise AblationError(f"shard set {name!r}: {folder} has no split {split!r} "
                                f"(it has: {', '.join(sorted(info['splits']))})")
        s = info["splits"][split]
        shards = [base / sh["path"] for sh in s["shards"]]
        missing = [p for p in shards if not p.exists()]
        if missing or not shards:
            raise AblationError(f"shard set {name!r}: "
                                f"{'missing ' + str(missing[0]) if missing else 'no shards'}")
        out[name] = ShardSet(name, shards, s["samples"], s["hours"], aug, src,
                             tuple({k: sh.get(k) for k in ("bytes", "samples")}
                                   for sh in s["shards"]), kind, seconds)
    return out


#: transforms that move or cut audio unevenly: a window's timestamps would no longer say where
#: its segments are (a uniform time stretch is fine: MixStream rescales the timestamps)
TIMING_TRANSFORMS = ("Shift", "Padding", "Trim", "RepeatPart", "Reverse", "AdjustDuration")


def check_windows(recipe: Recipe, sets: dict[str, ShardSet]) -> None:
    """Refuse, before any training, a mix that names window sets the model cannot take: windows
    longer than the model's window (every one would be dropped), or an on-the-fly augmentation
    with a transform that moves audio unevenly (:data:`TIMING_TRANSFORMS`)."""
    evaluated = [s for s in recipe.eval_sets if sets[s].kind == "windows"]
    for m in recipe.mixes:
        windows = [s for s in m.data if sets[s].kind == "windows"]
        seconds = float(m.training["seconds"])
        for s in evaluated:
            if sets[s].window_seconds > seconds + 1e-9:
                raise AblationError(
                    f"{recipe.path}: evaluation set {s} holds {sets[s].window_seconds:g}-s "
                    f"windows but mix {m.name!r} has a {seconds:g}-s window (training.seconds)")
        if not windows:
            continue
        for s in windows:
            if sets[s].window_seconds > seconds + 1e-9:
                raise AblationError(
                    f"{recipe.path}: mix {m.name!r}: {s} holds {sets[s].window_seconds:g}-s "
                    f"windows but the model's window is {seconds:g} s (training.seconds): every "
                    f"one would be dropped; run `sweaug windows --seconds {seconds:g}` or use a "
                    f"model with a longer window")
        if m.augment:
            from ..augment import load_recipe as load_augment
            bad = [st.name for st in load_augment(Path(m.augment)).steps
                   if st.name in TIMING_TRANSFORMS]
            if bad:
                raise AblationError(
                    f"{recipe.path}: mix {m.name!r}: augment recipe {m.augment} has "
                    f"{', '.join(bad)}, which move(s) audio unevenly: the timestamps of "
                    f"{', '.join(windows)} would be wrong; drop it from the recipe for windows")


def plan_text(recipe: Recipe, sets: dict[str, ShardSet]) -> str:
    lines = [f"recipe {recipe.name} ({recipe.path}); model {recipe.model}; "
             f"language {recipe.language}, task {recipe.task} (forced in evaluation); seed "
             f"{recipe.seed}"]
    for m in recipe.mixes:
        t = m.training
        per_step = t["per_device_train_batch_size"] * t["gradient_accumulation_steps"]
        total = sum(sets[s].samples for s in m.data)
        if m.epochs:
            e = m.epochs
            steps = (f"{e['max_steps']} steps ({e['num_train_epochs']:g} epochs of "
                     f"{e['samples']} samples, {e['samples_per_step']} per step)")
        elif t["max_steps"] is None:
            steps = f"{t['num_train_epochs']:g} epochs (steps from the samples)"
        else:
            steps = (f"{t['max_steps']} steps x {per_step} samples "
                     f"(~{t['max_steps'] * per_step / max(total, 1):.1f} passes over {total} "
                     f"samples)")
        lines.append(f"\nmix {m.name}: {steps}, lr {t['learning_rate']:g}, warm-up "
                     f"{t['warmup_steps']}"
                     + (f", LoRA r={m.lora.get('r')}" if m.lora else "")
                     + (f", on-the-fly augmentation {m.augment}" if m.augment else ""))
        if t.get("eval_steps"):
            lines.append(f"  evaluated every {t['eval_steps']} steps on "
                         f"{t['eval_during_training']} (first "
                         f"{t['eval_during_training_max_samples']} samples), eval "
                         f"{t['metric_for_best_model']}; "
                         + ("the best checkpoint is the model" if t["load_best_model_at_end"]
                            else "the last step is the model")
                         + (f"; early stopping after {t['early_stopping_patience']} evaluations "
                            f"without improvement" if t.get("early_stopping_patience") else ""))
        wsum = sum(m.data.values())
        for s, w in m.data.items():
            ss = sets[s]
            lines.append(f"  {s:<22} weight {w / wsum:5.1%}  {ss.samples:>7} samples "
                         f"{ss.hours:8.3f} h  source {ss.source}"
                         + ("  (augmented copies)" if ss.augmented else "")
                         + (f"  ({ss.window_seconds:g}-s windows)" if ss.kind == "windows"
                            else ""))
    lines.append("\nevaluation (baseline = the model without fine-tuning"
                 + (", always included)" if recipe.baseline else ", disabled)"))
    for s in recipe.eval_sets:
        n = sets[s].samples
        cap = recipe.eval_max_samples
        lines.append(f"  {s:<22} {n:>7} samples {sets[s].hours:8.3f} h"
                     + (f"  (first {min(cap, n)} evaluated)" if cap and cap < n else ""))
    return "\n".join(lines)
