"""Fine-tune Whisper on one mix with transformers' Seq2SeqTrainer (so `accelerate launch` /
`torchrun` run it unchanged), TensorBoard logs, checkpoints, resume from the last complete one
(:func:`last_complete_checkpoint`: a checkpoint that a kill while saving left without its
weights, optimizer or trainer state is deleted and the previous one used, logged).

On a machine without CUDA the seed's fp16 and 8-bit AdamW (bitsandbytes) fall back to fp32
and torch AdamW, said once.

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
                 dropout: float | None = None):
    """(model, feature extractor, tokenizer) with language and task forced for generation.

    ``dropout`` (the recipe's ``training.dropout``; None: the model's own) is set in the config
    the model is *built* from: Whisper's layers copy ``config.dropout`` when they are made, so
    setting ``model.config.dropout`` afterwards (what many fine-tuning notebooks do, and what
    sweaug did before) changes nothing."""
    from ..whisper import tiny_whisper

    if model == "tiny-random":
        m, fe, tok = tiny_whisper(seconds=seconds, seed=seed, dropout=dropout or 0.0, **tiny)
    else:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        proc = WhisperProcessor.from_pretrained(model)
        m = WhisperForConditionalGeneration.from_pretrained(
            model, **({} if dropout is None else {"dropout": dropout}))
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


def training_arguments(t: dict, out: Path, seed: int):
    import torch
    from transformers import Seq2SeqTrainingArguments

    import inspect

    cuda = torch.cuda.is_available()
    accel = torch.accelerator.is_available() if hasattr(torch, "accelerator") else cuda
    params = inspect.signature(Seq2SeqTrainingArguments.__init__).parameters
    ckpt = "activation_checkpointing" if "activation_checkpointing" in params \
        else "gradient_checkpointing"  # renamed in transformers 5
    fp16, optim = bool(t["fp16"]), t["optim"]
    if not cuda and fp16:
        _say_once("no CUDA: training in fp32 instead of fp16")
        fp16 = False
    if not cuda and ("bnb" in optim or "8bit" in optim):
        _say_once(f"no CUDA: training with torch AdamW instead of {optim} (bitsandbytes)")
        optim = "adamw_torch"
    return Seq2SeqTrainingArguments(
        output_dir=str(out / "checkpoints"),
        per_device_train_batch_size=t["per_device_train_batch_size"],
        gradient_accumulation_steps=t["gradient_accumulation_steps"],
        learning_rate=float(t["learning_rate"]), lr_scheduler_type=t["lr_scheduler_type"],
        warmup_steps=t["warmup_steps"], max_steps=t["max_steps"], weight_decay=t["weight_decay"],
        fp16=fp16, optim=optim, dataloader_pin_memory=cuda,
        **{ckpt: bool(t["gradient_checkpointing"]) and cuda},
        logging_steps=t["logging_steps"], save_steps=t["save_steps"], save_total_limit=2,
        report_to="none", seed=seed, data_seed=seed,  # TensorBoard: our callback, own folder
        dataloader_num_workers=t["dataloader_num_workers"], remove_unused_columns=False,
        label_names=["labels"], eval_strategy="no", disable_tqdm=True,
        accelerator_config={"dispatch_batches": False},
        use_cpu=not accel,  # several CPU processes: DDP over gloo (accelerate's MULTI_CPU)
    )


def train_mix(recipe, mix, sets: dict, out: Path) -> dict:
    """Train one mix; returns the training summary (losses by step). The fine-tuned model is
    saved to ``out/model``."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers import TrainerCallback
    from transformers.integrations import TensorBoardCallback

    from .features import LogMel
    from .mix import MixStream, SpeechCollator

    t = mix.training
    model, fe, tok = load_whisper(recipe.model, t["seconds"], recipe.tiny, recipe.seed,
                                  recipe.language, recipe.task, dropout=t["dropout"])
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

        model = get_peft_model(model, LoraConfig(
            r=mix.lora.get("r", 32), lora_alpha=mix.lora.get("alpha", 64),
            lora_dropout=mix.lora.get("dropout", 0.05),
            target_modules=mix.lora.get("target_modules", ["q_proj", "v_proj"])))
    augmenter = None
    if mix.augment:
        from ..augment import Augmenter, load_recipe
        augmenter = Augmenter(load_recipe(Path(mix.augment)), recipe.seed)
    out.mkdir(parents=True, exist_ok=True)
    args = training_arguments(t, out, recipe.seed)  # sets up the process group under torchrun
    main, world = args.process_index == 0, args.world_size
    stream = MixStream([(sets[s].shards, w) for s, w in mix.data.items()], tok, LogMel(fe),
                       recipe.seed, augmenter, rank=args.process_index, world_size=world,
                       shuffle_buffer=t["shuffle_buffer"])
    losses: list[tuple[int, float]] = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))
                if main:  # a progress line (`sweaug demo` shows the latest of each job's)
                    print(f"{PROGRESS} {mix.name}: step {state.global_step}/{state.max_steps}, "
                          f"loss {float(logs['loss']):.3f}", flush=True)

    callbacks = [Record()]
    if main:  # a SummaryWriter creates its event file at once: rank 0 only
        callbacks.append(TensorBoardCallback(SummaryWriter(str(out / "tensorboard"))))
    trainer = _trainer_class(kept, model.config)(
        model=model, args=args, train_dataset=stream,
        data_collator=SpeechCollator(model.config.decoder_start_token_id), callbacks=callbacks)
    last = last_complete_checkpoint(out / "checkpoints", remove=main, name=mix.name)
    if last and main:
        log.warning("%s: resuming from %s", mix.name, last)
    last = str(last) if last else None
    result = trainer.train(resume_from_checkpoint=last)
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
    return {"steps": int(result.global_step), "train_loss": float(result.training_loss),
            "losses": losses, "resumed_from": Path(last).name if last else None,
            "processes": world, "kept_tokens": len(kept) if kept is not None else None}


_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
# what a checkpoint needs to resume from, besides the model weights; the Trainer writes them in
# this order after the weights, trainer_state.json last (then it rotates old checkpoints out)
_RESUME_FILES = ("optimizer.pt", "scheduler.pt", "trainer_state.json")


def checkpoint_problem(folder: Path) -> str | None:
    """Why a Trainer checkpoint folder cannot be resumed from (None: it is complete): model
    weights (``model.safetensors``, ``pytorch_model.bin``, a PEFT adapter, or a sharded index
    whose every shard is there), ``optimizer.pt``, ``scheduler.pt`` and a readable
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
