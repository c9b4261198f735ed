"""Fine-tune Whisper on one mix with transformers' Seq2SeqTrainer (so `accelerate launch` /
`torchrun` run it unchanged), TensorBoard logs, checkpoints, resume from the last complete one
(:func:`last_complete_checkpoint`: a checkpoint that a kill while saving left without its
weights, optimizer or trainer state is deleted and the previous one used, logged).

What the device runs (precision, optimizer, attention, gradient checkpointing) is decided before
training by ``device.plan_training``: on a machine without CUDA the seed's fp16 and 8-bit AdamW
(bitsandbytes) fall back to fp32 and torch AdamW — said once, and recorded in the summary
(``ran_with``) and in the model's hash. Checkpoints live under ``checkpoints/<hash>``, so a
checkpoint is resumed only by a run of the same settings on the same kind of device. Resuming
seeks the sample stream to where the checkpoint stopped (``mix.StreamProgress``) instead of
replaying it.

Several processes (DDP): every rank streams its own disjoint slice of the mix
(``MixStream`` splits by (rank, DataLoader worker)). accelerate would otherwise either have
rank 0 alone read the stream and broadcast slices (``dispatch_batches``, its default for an
iterable dataset) or wrap it in an ``IterableDatasetShard`` that keeps one batch in
``world_size`` of what each rank reads — on top of MixStream's own split, each rank would
prepare ``world_size`` times the samples it trains on (measured: 32 instead of 16 on 2 ranks).
So ``dispatch_batches`` is off and :func:`_trainer_class` makes that wrapper a pass-through
(as transformers does for its own rank-aware samplers). Training is bounded by ``max_steps``
over an endless stream, so every rank takes the same number of steps and none waits at an
epoch end. Without a GPU (no torch accelerator) the ranks use gloo on the CPU (``use_cpu``;
else accelerate would run them as unrelated single processes, each training alone). The model,
tokenizer and TensorBoard logs are written by rank 0 only; checkpoints by the Trainer's rules.

What training prints (one line per logging step) and keeps (``<out>/train_log.jsonl``): see
``trainlog.py``. ``num_train_epochs`` reaches here as ``max_steps`` (``ablate_recipe.
resolve_steps``: the stream is endless). ``eval_steps`` evaluates during training with
sweaug's own evaluation (:func:`in_training_evaluation`, rank 0, its metrics broadcast to the
others), which the Trainer uses for ``metric_for_best_model`` / ``load_best_model_at_end`` and
transformers' ``EarlyStoppingCallback`` (``early_stopping_patience``); the summary records the
best step and metric (:func:`best_summary`).
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

log = logging.getLogger("sweaug.train")
PROGRESS = "[train]"
_SAID = set()


def _say_once(msg: str) -> None:
    if msg not in _SAID:
        _SAID.add(msg)
        log.warning(msg)


def load_whisper(model: str, seconds: float, tiny: dict, seed: int, language: str, task: str,
                 dropout: float | None = None, attention: str = "sdpa"):
    """(model, feature extractor, tokenizer) with language and task forced for generation.

    ``dropout`` (the recipe's ``training.dropout``; None: the model's own) is set in the config
    the model is *built* from: Whisper's layers copy ``config.dropout`` when they are made, so
    setting ``model.config.dropout`` afterwards (what many fine-tuning notebooks do, and what
    sweaug did before) changes nothing. ``attention``: the attention implementation asked for
    (``sdpa``: torch's fused kernels; what the model got is ``config._attn_implementation``)."""
    from .whisper import tiny_whisper

    if model == "tiny-random":
        m, fe, tok = tiny_whisper(seconds=seconds, seed=seed, dropout=dropout or 0.0, **tiny)
        if m.config._attn_implementation != attention:
            m.set_attn_implementation(attention)
    else:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from .pretrained import load_kwargs

        kw = load_kwargs(model)  # as the preflight resolved it (pretrained.resolve)
        proc = WhisperProcessor.from_pretrained(model, **kw)
        m = WhisperForConditionalGeneration.from_pretrained(
            model, attn_implementation=attention, **kw,
            **({} if dropout is None else {"dropout": dropout}))
        fe, tok = proc.feature_extractor, proc.tokenizer
    tok.set_prefix_tokens(language=language, task=task)
    m.generation_config.language = language
    m.generation_config.task = task
    m.generation_config.forced_decoder_ids = None
    m.config.forced_decoder_ids = None
    # saved as "from the model config", transformers would rebuild it on load and lose
    # lang_to_id / task_to_id / is_multilingual, i.e. the forcing of language and task
    m.generation_config._from_model_config = False
    return m, fe, tok


def training_arguments(t: dict, out: Path, seed: int, plan: dict | None = None):
    """The Trainer's arguments for settings ``t``, as ``plan`` (:func:`~.device.plan_training`,
    made for this machine when not given) says the device runs them; checkpoints go to
    ``out``. The Trainer never fast-forwards the data on resume (``ignore_data_skip``):
    :class:`~.mix.MixStream` seeks itself."""
    import inspect

    import torch
    from transformers import Seq2SeqTrainingArguments

    from .device import plan_training

    if plan is None:
        plan, problems = plan_training(t)
        if problems:
            raise RuntimeError("; ".join(problems))
    for f in plan["fallbacks"]:
        _say_once(f"training fallback on this machine: {f}")
    accel = torch.accelerator.is_available() if hasattr(torch, "accelerator") \
        else torch.cuda.is_available()
    cuda = plan["device"] == "cuda"
    params = inspect.signature(Seq2SeqTrainingArguments.__init__).parameters
    ckpt = "activation_checkpointing" if "activation_checkpointing" in params \
        else "gradient_checkpointing"  # renamed in transformers 5
    ckpt_kw = {}
    if plan["gradient_checkpointing"]:  # explicit: the default changed across versions
        ckpt_kw[ckpt + "_kwargs"] = {"use_reentrant": bool(plan["checkpointing_reentrant"])}
    return Seq2SeqTrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=t["per_device_train_batch_size"],
        gradient_accumulation_steps=t["gradient_accumulation_steps"],
        learning_rate=float(t["learning_rate"]), lr_scheduler_type=t["lr_scheduler_type"],
        warmup_steps=t["warmup_steps"], max_steps=t["max_steps"], weight_decay=t["weight_decay"],
        fp16=plan["precision"] == "fp16", bf16=plan["precision"] == "bf16",
        optim=plan["optimizer"], dataloader_pin_memory=cuda,
        **{ckpt: plan["gradient_checkpointing"]}, **ckpt_kw,
        logging_steps=t["logging_steps"], save_steps=t["save_steps"],
        save_total_limit=CHECKPOINTS_KEPT, ignore_data_skip=True,
        report_to="none", seed=seed, data_seed=seed,  # TensorBoard: our callback, own folder
        dataloader_num_workers=t["dataloader_num_workers"], remove_unused_columns=False,
        label_names=["labels"], disable_tqdm=True, **eval_arguments(t),
        accelerator_config={"dispatch_batches": False},
        # several CPU processes: DDP over gloo (accelerate's MULTI_CPU)
        use_cpu=not accel or not cuda,
    )


def eval_arguments(t: dict) -> dict:
    """The Trainer's evaluation arguments for ``training.eval_steps`` & co. (none: no
    evaluation during training). The evaluation itself is sweaug's
    (:func:`in_training_evaluation`), logged as ``eval_loss`` / ``eval_wer``; lower is better
    for both. The Trainer tracks the best one (``state.best_metric`` / ``best_global_step``) and,
    with ``load_best_model_at_end``, keeps its checkpoint and loads it when training ends."""
    if not t.get("eval_steps"):
        return {"eval_strategy": "no"}
    return {"eval_strategy": "steps", "eval_steps": int(t["eval_steps"]),
            "metric_for_best_model": "eval_" + t.get("metric_for_best_model", "loss"),
            "greater_is_better": False,
            "load_best_model_at_end": bool(t.get("load_best_model_at_end", False))}


def in_training_evaluation(recipe, mix, sets: dict, model, fe, tok, kept=None, full_head=None):
    """A function that evaluates ``model`` (the plain Whisper under a LoRA wrapper, adapters in
    place) on ``training.eval_during_training`` — its first ``eval_during_training_max_samples``
    samples, with :func:`~.evaluate.evaluate_set`, the code of the final evaluation — and
    returns ``{"loss", "samples"}`` and, for ``metric_for_best_model: wer``, ``"wer"`` and
    ``"nwer"`` (fractions). For ``loss`` it generates a single token per batch (the WER of that
    is meaningless and not reported): the teacher-forced loss alone costs one forward pass.
    With ``vocabulary: transcripts`` the full head and the suppressed tokens stand in while it
    runs, as in the saved model."""
    import itertools

    from .evaluate import eval_settings, evaluate_set, shard_samples

    t = mix.training
    ss = sets[t["eval_during_training"]]
    cap = int(t["eval_during_training_max_samples"])
    wer = t.get("metric_for_best_model", "loss") == "wer"

    def run() -> dict:
        kw = eval_settings(recipe, mix, model)
        if not wer:
            kw["max_new_tokens"] = 1
        swapped = None
        if kept is not None:
            from .vocab import suppressed
            swapped = (model.proj_out, model.generation_config.suppress_tokens)
            model.proj_out = full_head
            model.generation_config.suppress_tokens = suppressed(model.config.vocab_size, kept)
        try:
            r = evaluate_set(model, tok, fe, itertools.islice(shard_samples(ss.shards), cap),
                             language=recipe.language, task=recipe.task, max_samples=cap,
                             bootstrap=1, seed=recipe.seed, total=ss.samples, **kw)
        finally:
            if swapped is not None:
                model.proj_out, model.generation_config.suppress_tokens = swapped
        out = {"loss": r["eval_loss"], "samples": r["n"]}
        if wer:
            out.update(wer=r["wer"], nwer=r["nwer"])
        return out

    return run


def enable_checkpointing(model, reentrant: bool = False) -> None:
    """Activation (gradient) checkpointing on ``model`` as the Trainer turns it on for
    ``training_arguments``: ``use_reentrant`` explicit (its default changed across releases),
    through transformers 5's ``activation_checkpointing_enable`` where it exists (for the
    batch probe of benchmarks/gpu_check.py and the tests, which build no Trainer)."""
    kw = {"use_reentrant": bool(reentrant)}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)


def _lora_inputs_require_grad(model) -> None:
    """With gradient checkpointing, a checkpointed block whose inputs do not require grad
    gives its parameters no gradient under *reentrant* checkpointing — and with LoRA every
    input does not (the embeddings and the encoder's convolutions are frozen). transformers'
    ``enable_input_require_grads`` makes the decoder's input embeddings require grad; the
    encoder's input is the output of its convolutions, so the same is done there. Harmless
    under non-reentrant checkpointing (tested with both, tests/test_train_gpu_path.py)."""
    model.enable_input_require_grads()
    encoder = model.get_encoder()
    encoder.conv2.register_forward_hook(lambda module, inputs, output: output.requires_grad_(True))


# Whisper's SpecAugment settings (WhisperConfig), which a recipe's training may set
SPEC_AUGMENT_KEYS = ("apply_spec_augment", "mask_time_prob", "mask_time_length",
                     "mask_time_min_masks", "mask_feature_prob", "mask_feature_length",
                     "mask_feature_min_masks")


def apply_spec_augment(model, t: dict) -> dict | None:
    """Set Whisper's SpecAugment (``apply_spec_augment``, ``mask_time_prob``, ...) from the
    training settings on the model's config, which its encoder reads at every training forward
    (never in eval mode); returns what was set (None: off)."""
    given = {k: t[k] for k in SPEC_AUGMENT_KEYS if t.get(k) is not None}
    if not given:
        return None
    for k, v in given.items():
        setattr(model.config, k, v)
    if not model.config.apply_spec_augment:
        return None
    return {k: getattr(model.config, k) for k in SPEC_AUGMENT_KEYS}


def _settings_diff(old: dict, new: dict, limit: int = 6) -> str:
    def flat(d, prefix=""):
        out = {}
        for k, v in (d or {}).items():
            if isinstance(v, dict):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    a, b = flat(old), flat(new)
    a.pop("recipe_hash", None)  # it differs whenever anything does: say what
    b.pop("recipe_hash", None)
    diffs = [f"{k} {a.get(k, '(unset)')!r} -> {b.get(k, '(unset)')!r}"
             for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    more = f", and {len(diffs) - limit} more" if len(diffs) > limit else ""
    return ", ".join(diffs[:limit]) + more if diffs else "settings not recorded"


def checkpoint_folder(out: Path, run_hash: str, settings: dict, name: str, main: bool) -> Path:
    """``out/checkpoints/<run_hash>``: the checkpoints of these settings. Checkpoints of other
    settings (another hash; or an older sweaug's ``checkpoints/checkpoint-N``, which recorded
    none) are never resumed — a changed recipe trains from the start — and are kept; what
    differs is logged. ``settings.json`` in the folder says what the hash stands for."""
    import json

    from ..files import atomic_write_bytes

    root = out / "checkpoints"
    folder = root / run_hash
    if main and root.is_dir():
        for other in sorted(p for p in root.iterdir() if p.is_dir() and p != folder):
            if _CHECKPOINT.fullmatch(other.name):
                log.warning("%s: %s is from an older sweaug that did not record its settings: "
                            "not resumed (kept; delete it to free the space)", name, other)
                continue
            if not any(_CHECKPOINT.fullmatch(c.name) for c in other.iterdir()):
                continue
            try:
                old = json.loads((other / "settings.json").read_text())
            except (OSError, ValueError):
                old = {}
            log.warning("%s: the checkpoints in %s are of other settings (%s): not resumed, "
                        "training these settings from the start (the others are kept)",
                        name, other, _settings_diff(old, settings))
    if main:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / "settings.json",
                           json.dumps(settings, indent=1, sort_keys=True, default=str).encode())
    return folder


def train_mix(recipe, mix, sets: dict, out: Path, plan: dict | None = None,
              run_hash: str | None = None) -> dict:
    """Train one mix; returns the training summary (losses by step, what the device ran with,
    throughput, dropped samples). The fine-tuned model is saved to ``out/model``; checkpoints
    to ``out/checkpoints/<run_hash>`` (:func:`checkpoint_folder`)."""
    import time

    from torch.utils.tensorboard import SummaryWriter
    from transformers import EarlyStoppingCallback
    from transformers.integrations import TensorBoardCallback

    from .device import ATTENTION, plan_training, run_key
    from .features import LogMel
    from .mix import MixStream, SpeechCollator, StreamProgress
    from .trainlog import LOG_FILE, JsonLines, progress_callback, quiet_transformers, \
        remove_printing

    t = mix.training
    if t.get("max_steps") is None:
        raise RuntimeError(f"{mix.name}: num_train_epochs is not converted to steps yet "
                           f"(ablate_recipe.resolve_steps)")
    if plan is None:
        plan, problems = plan_training(t, lora=bool(mix.lora))
        if problems:
            raise RuntimeError("; ".join(problems))
    run_hash = run_hash or run_key(recipe.mix_hash(mix), plan)
    model, fe, tok = load_whisper(recipe.model, t["seconds"], recipe.tiny, recipe.seed,
                                  recipe.language, recipe.task, dropout=t["dropout"],
                                  attention=plan["attention"])
    attention = model.config._attn_implementation
    if attention != ATTENTION:
        raise RuntimeError(f"{mix.name}: the model runs {attention} attention, not {ATTENTION}")
    spec = apply_spec_augment(model, t)
    # Whisper's forward takes **kwargs, so the Trainer assumes its loss is a sum normalized by
    # `num_items_in_batch`; it is a plain mean. Left so, the Trainer would not divide it by the
    # gradient accumulation steps and would multiply it by the number of DDP processes (loss
    # and gradients x accumulation x processes). transformers' own flag for such models:
    model.accepts_loss_kwargs = False
    kept = None
    if t.get("vocabulary", "full") == "transcripts":
        from .vocab import KeptLogits, suppressed, transcript_tokens
        kept = sorted(set(transcript_tokens([sets[s].shards for s in mix.data], tok))
                      | {model.config.decoder_start_token_id})
        log.info("%s: softmax over the %d tokens of the training transcripts (of %d)",
                 mix.name, len(kept), model.config.vocab_size)
        full_head = model.proj_out
        model.proj_out = KeptLogits(full_head, kept)
    base = model  # LoRA wraps it in place
    if mix.lora:
        from peft import LoraConfig, get_peft_model

        if plan["gradient_checkpointing"]:
            _lora_inputs_require_grad(base)
        model = get_peft_model(model, LoraConfig(
            r=mix.lora.get("r", 32), lora_alpha=mix.lora.get("alpha", 64),
            lora_dropout=mix.lora.get("dropout", 0.05),
            target_modules=mix.lora.get("target_modules", ["q_proj", "v_proj"])))
    augmenter = None
    if mix.augment:
        from ..augment import Augmenter, load_recipe
        augmenter = Augmenter(load_recipe(Path(mix.augment)), recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"recipe_hash": recipe.mix_hash(mix), "model": recipe.model, "tiny": recipe.tiny,
                "seed": recipe.seed, "data": mix.data, "augment": mix.augment, "lora": mix.lora,
                "training": t, "ran_with": {k: v for k, v in plan.items()
                                            if k not in ("device_name", "fallbacks")}}
    rank = int(__import__("os").environ.get("RANK", 0))
    folder = checkpoint_folder(out, run_hash, settings, mix.name, rank == 0)
    args = training_arguments(t, folder, recipe.seed, plan)  # the process group under torchrun
    main, world = args.process_index == 0, args.world_size
    workers = max(1, t["dataloader_num_workers"])
    last = last_complete_checkpoint(folder, remove=main, name=mix.name)
    progress = StreamProgress(args.process_index, world * workers, workers, world)
    if last:
        progress = StreamProgress.load(last, args.process_index, world * workers, workers, world)
        if main:
            log.warning("%s: resuming from %s (the stream seeks to %d samples per rank, none "
                        "replayed)", mix.name, last, progress.samples())
    window = int(getattr(fe, "n_samples", 0)) or None
    max_labels = int(model.config.max_target_positions)
    stream = MixStream([(sets[s].shards, w) for s, w in mix.data.items()], tok, LogMel(fe),
                       recipe.seed, augmenter, rank=args.process_index, world_size=world,
                       shuffle_buffer=t["shuffle_buffer"], max_audio_samples=window,
                       max_label_tokens=max_labels, start=progress.state,
                       worker_offset=progress.batches % workers)
    losses: list[tuple[int, float]] = []
    # the console's progress lines and <out>/train_log.jsonl (trainlog.py); `sweaug demo` shows
    # the latest PROGRESS line of each job's log
    sink = JsonLines(out / LOG_FILE if main else None)
    metric = t.get("metric_for_best_model", "loss") if t.get("eval_steps") else None
    callbacks = [progress_callback(mix.name, PROGRESS, t["per_device_train_batch_size"]
                                   * t["gradient_accumulation_steps"] * world, sink, main,
                                   losses, metric)]
    if main:  # a SummaryWriter creates its event file at once: rank 0 only
        callbacks.append(TensorBoardCallback(SummaryWriter(str(out / "tensorboard"))))
    if t.get("early_stopping_patience"):
        callbacks.append(EarlyStoppingCallback(int(t["early_stopping_patience"])))
    evaluate = None
    if metric:
        evaluate = in_training_evaluation(recipe, mix, sets, base, fe, tok, kept,
                                          full_head if kept is not None else None)
    sink.write({"start": {"run_hash": run_hash, "resumed_from": last.name if last else None,
                          "max_steps": t["max_steps"], "processes": world}})
    file_only = ()
    if getattr(base.proj_out, "weight", None) is base.model.decoder.embed_tokens.weight:
        # loading the best checkpoint: its file holds the tied head once, as embed_tokens
        file_only = ("missing keys in the checkpoint model loaded: ['proj_out.weight']",)
    with quiet_transformers(sink, console=True, file_only=file_only):
        trainer = _trainer_class(kept, model.config)(
            model=model, args=args, train_dataset=stream,
            # the Trainer wants an eval_dataset to evaluate; sweaug's evaluation reads its own
            eval_dataset=[{}] if evaluate else None,
            data_collator=SpeechCollator(model.config.decoder_start_token_id,
                                         model.config.pad_token_id),
            callbacks=callbacks)
        remove_printing(trainer)
        trainer.sweaug_progress = progress
        trainer.sweaug_resume_rng = str(last) if last else None
        trainer.sweaug_evaluate = evaluate
        start_step = trainer_state_step(last) if last else 0
        last = str(last) if last else None
        t0 = time.perf_counter()
        result = trainer.train(resume_from_checkpoint=last)
        seconds = time.perf_counter() - t0
        if kept is not None:  # the saved model is a plain Whisper that never emits the others
            base.proj_out = full_head
            base.generation_config.suppress_tokens = suppressed(model.config.vocab_size, kept)
        if main:
            if mix.lora:
                model = model.merge_and_unload()
            model.save_pretrained(str(out / "model"))
            tok.save_pretrained(str(out / "model"))
            fe.save_pretrained(str(out / "model"))
        trainer.accelerator.wait_for_everyone()  # the model is on disk before any rank goes on
    sink.close()
    best = best_summary(trainer.state, t, result) if metric else None
    if main and best and best["loaded"]:
        log.info("%s: the best checkpoint (step %s, eval %s %.4g) was loaded at the end of "
                 "training and saved as the model", mix.name, best["step"], best["metric"],
                 best["value"])
    timing = trainer.sweaug_timing
    dropped = progress.dropped()
    if main and any(dropped.values()):
        log.warning("%s: dropped %d training sample(s) over the %.1f s window after augmentation, "
                    "%d with labels over %d tokens and %d whose augmentation failed (rank %d)",
                    mix.name, dropped["over_window"], (window or 0) / 16000,
                    dropped["over_max_labels"], max_labels, dropped["augment_failed"],
                    args.process_index)
    return {"steps": int(result.global_step), "train_loss": float(result.training_loss),
            "losses": losses, "resumed_from": Path(last).name if last else None,
            "processes": world, "kept_tokens": len(kept) if kept is not None else None,
            "ran_with": {**plan, "attention": attention}, "spec_augment": spec,
            "run_hash": run_hash, "max_steps": int(t["max_steps"]),
            "epochs": mix_epochs(mix), "best": best,
            "evaluations": evaluations(trainer.state) if metric else None,
            "log_file": LOG_FILE if main else None,
            "dropped": {**dropped, "window_seconds": (window or 0) / 16000,
                        "max_label_tokens": max_labels, "rank": args.process_index},
            "throughput": {"seconds": round(seconds, 3),
                           "steps": int(result.global_step) - start_step,
                           "samples": timing["samples"], "label_tokens": timing["label_tokens"],
                           "loader_wait_seconds": round(timing["wait"], 3),
                           "first_batch_seconds": round(timing["first_wait"] or 0.0, 3),
                           "per_rank": True}}


def mix_epochs(mix) -> dict | None:
    """``num_train_epochs`` as converted to steps (``ablate_recipe.resolve_steps``): epochs,
    samples of the mix, samples per step, steps; None when the recipe gives max_steps."""
    return getattr(mix, "epochs", None)


def best_summary(state, t: dict, result) -> dict:
    """The best evaluation during training, as the Trainer tracked it: ``metric`` (loss or
    wer), ``value``, ``step``, ``checkpoint`` (its folder name; None when none was saved at that
    step), ``loaded`` (load_best_model_at_end: the saved model is that checkpoint's), and
    whether early stopping ended training before max_steps (``stopped_early``)."""
    ckpt = state.best_model_checkpoint
    return {"metric": t.get("metric_for_best_model", "loss"),
            "set": t.get("eval_during_training"),
            "max_samples": t.get("eval_during_training_max_samples"),
            "value": None if state.best_metric is None else float(state.best_metric),
            "step": state.best_global_step or None,
            "checkpoint": Path(ckpt).name if ckpt else None,
            "loaded": bool(t.get("load_best_model_at_end") and ckpt),
            "stopped_early": int(result.global_step) < int(t["max_steps"]),
            "early_stopping_patience": t.get("early_stopping_patience")}


def evaluations(state) -> list[dict]:
    """Every evaluation during training: ``{"step", "loss"[, "wer", "nwer"]}``."""
    out = []
    for h in state.log_history:
        if "eval_loss" in h:
            out.append({"step": h.get("step"),
                        **{k[5:]: h[k] for k in ("eval_loss", "eval_wer", "eval_nwer")
                           if k in h}})
    return out


def trainer_state_step(folder) -> int:
    import json

    return int(json.loads((Path(folder) / "trainer_state.json").read_text())["global_step"])


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# what a checkpoint needs to resume from, besides the model weights; the Trainer writes them in
# this order after the weights, trainer_state.json last (then it rotates old checkpoints out)
_RESUME_FILES = ("sweaug_stream-rank0.json", "optimizer.pt", "scheduler.pt",
                 "trainer_state.json")
CHECKPOINTS_KEPT = 2  # save_total_limit (device.checkpoint_bytes counts the disk with it)


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (None: it is complete): model
    weights (``model.safetensors``, ``pytorch_model.bin``, a PEFT adapter, or a sharded index
    whose every shard is there), the stream's position (``sweaug_stream-rank0.json``, written
    first), ``optimizer.pt``, ``scheduler.pt`` and a readable
    ``trainer_state.json`` of the folder's own step. A process killed while the Trainer saves
    (it writes the configs, the weights, the optimizer, then the state) leaves one without."""
    import json

    n = int(_CHECKPOINT.fullmatch(folder.name).group(1))
    weights = [f for f in ("model.safetensors", "pytorch_model.bin", "adapter_model.safetensors",
                           "adapter_model.bin") if (folder / f).is_file()]
    for index in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        if not weights and (folder / index).is_file():
            try:
                shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                return f"unreadable {index} ({e})"
            absent = sorted(s for s in shards if not (folder / s).is_file())
            if absent:
                return f"weight shard(s) {', '.join(absent)} missing"
            weights = [index]
    missing = [f for f in _RESUME_FILES if not (folder / f).is_file()]
    if not weights:
        missing.insert(0, "model weights")
    if missing:
        return "no " + ", ".join(missing)
    try:
        step = json.loads((folder / "trainer_state.json").read_text())["global_step"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable trainer_state.json ({e})"
    if step != n:
        return f"trainer_state.json is of step {step}"
    return None


def last_complete_checkpoint(folder: Path, remove: bool = True, name: str = "") -> Path | None:
    """The complete ``checkpoint-N`` of ``folder`` with the highest N (None: none; start
    fresh). Every incomplete checkpoint above it (:func:`checkpoint_problem`: a run killed while
    saving) is logged and, with ``remove`` (rank 0 only), deleted — else the Trainer would
    resume from it and fail ("Can't find a valid checkpoint"), or rotate the good ones out."""
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted((p for p in folder.iterdir() if p.is_dir() and _CHECKPOINT.fullmatch(p.name)),
                   key=lambda p: int(_CHECKPOINT.fullmatch(p.name).group(1)), reverse=True)
    for c in found:
        why = checkpoint_problem(c)
        if why is None:
            return c
        if remove:
            log.warning("%s: %s is incomplete (%s; killed while saving?): deleted, resuming from "
                        "the previous complete checkpoint, if any", name or folder, c, why)
            shutil.rmtree(c, ignore_errors=True)
    if found and remove:
        log.warning("%s: no complete checkpoint in %s: training from the start",
                    name or folder, folder)
    return None


def _trainer_class(kept: list[int] | None = None, config=None):
    """Seq2SeqTrainer whose training DataLoader leaves the rank split to MixStream; with
    ``kept`` (``vocabulary: transcripts``, see ``vocab.py``) its loss is the cross-entropy over
    the kept tokens, whose logits alone the model's ``KeptLogits`` head computes."""
    from accelerate.data_loader import DataLoaderDispatcher, IterableDatasetShard
    from transformers import Seq2SeqTrainer

    index = None
    if kept is not None:
        from .vocab import index_of, kept_token_loss
        index = index_of(config.vocab_size, kept)

    class _Trainer(Seq2SeqTrainer):
        """Also: takes MixStream's positions out of every batch the loop consumes (into
        ``sweaug_progress``, saved into each checkpoint before the Trainer's own files), and
        times the loop's wait for batches (``sweaug_timing``). Resuming, it restores the
        checkpoint's random states (dropout, SpecAugment) once the first batch is in: with
        ``ignore_data_skip`` (the stream seeks itself) transformers would not, and the resumed
        run would drift from the uninterrupted one."""
        sweaug_progress = None
        sweaug_resume_rng = None  # the checkpoint folder, until its RNG state is loaded

        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.sweaug_timing = {"wait": 0.0, "first_wait": None, "samples": 0,
                                  "label_tokens": 0}

        def get_batch_samples(self, epoch_iterator, num_batches, device):
            import time

            t0 = time.perf_counter()
            batches, n = super().get_batch_samples(epoch_iterator, num_batches, device)
            wait = time.perf_counter() - t0
            if self.sweaug_resume_rng is not None:  # what transformers' rng_to_sync does
                self._load_rng_state(self.sweaug_resume_rng)
                self.sweaug_resume_rng = None
            timing = self.sweaug_timing
            timing["wait"] += wait
            if timing["first_wait"] is None:
                timing["first_wait"] = wait
            for b in batches:
                info = b.pop("sweaug", None) or {}
                if info.get("stream") and self.sweaug_progress is not None:
                    self.sweaug_progress.consume(info["stream"])
                timing["samples"] += int(info.get("samples", 0))
                timing["label_tokens"] += int(info.get("label_tokens", 0))
            return batches, n

        sweaug_evaluate = None  # in_training_evaluation's function (None: the Trainer's own)

        def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
            """sweaug's evaluation (rank 0 runs it, the others get its metrics), logged and
            handed to the callbacks (early stopping) as the Trainer's own would be."""
            import time

            if self.sweaug_evaluate is None:
                return super().evaluate(eval_dataset, ignore_keys, metric_key_prefix)
            t0 = time.perf_counter()
            metrics = [self.sweaug_evaluate() if self.args.process_index == 0 else None]
            if self.args.world_size > 1:
                import torch.distributed as dist
                if dist.is_available() and dist.is_initialized():
                    dist.broadcast_object_list(metrics, src=0)
            metrics = {f"{metric_key_prefix}_{k}": v for k, v in metrics[0].items()}
            metrics[f"{metric_key_prefix}_runtime"] = round(time.perf_counter() - t0, 4)
            self.log(metrics)
            self.control = self.callback_handler.on_evaluate(self.args, self.state,
                                                             self.control, metrics)
            return metrics

        def _save_checkpoint(self, model, trial):
            if self.sweaug_progress is not None:
                folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
                folder.mkdir(parents=True, exist_ok=True)
                self.sweaug_progress.save(folder)
            return super()._save_checkpoint(model, trial)

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if index is None:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss, out = kept_token_loss(model, inputs, index, config)
            return (loss, out) if return_outputs else loss

        def get_train_dataloader(self):
            dl = super().get_train_dataloader()
            if isinstance(dl, DataLoaderDispatcher):
                raise RuntimeError("accelerate dispatches batches from rank 0, but MixStream "
                                   "splits by rank itself: set dispatch_batches=False")
            inner = getattr(dl, "dataset", None)
            if isinstance(inner, IterableDatasetShard) and inner.dataset is self.train_dataset:
                inner.num_processes, inner.process_index = 1, 0  # a pass-through
            return dl

    return _Trainer
