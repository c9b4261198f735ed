"""Fine-tune Whisper on one mix with transformers' Seq2SeqTrainer (so `accelerate launch` /
`torchrun` run it unchanged), TensorBoard logs, checkpoints, resume from the last one.

On a machine without CUDA the seed's fp16 and 8-bit AdamW (bitsandbytes) fall back to fp32
and torch AdamW, said once.
"""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger("sweaug.train")
_SAID = set()


def _say_once(msg: str) -> None:
    if msg not in _SAID:
        _SAID.add(msg)
        log.warning(msg)


def load_whisper(model: str, seconds: float, tiny: dict, seed: int, language: str, task: str):
    """(model, feature extractor, tokenizer) with language and task forced for generation."""
    from ..whisper import tiny_whisper

    if model == "tiny-random":
        m, fe, tok = tiny_whisper(seconds=seconds, seed=seed, **tiny)
    else:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        proc = WhisperProcessor.from_pretrained(model)
        m = WhisperForConditionalGeneration.from_pretrained(model)
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
    params = inspect.signature(Seq2SeqTrainingArguments.__init__).parameters
    ckpt = "activation_checkpointing" if "activation_checkpointing" in params \
        else "gradient_checkpointing"  # renamed in transformers 5
    fp16, optim = bool(t["fp16"]), t["optim"]
    if not cuda and (fp16 or "bnb" in optim or "8bit" in optim):
        _say_once("no CUDA: training in fp32 with torch AdamW instead of fp16 / 8-bit AdamW")
        fp16, optim = False, "adamw_torch"
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
    )


def train_mix(recipe, mix, sets: dict, out: Path) -> dict:
    """Train one mix; returns the training summary (losses by step). The fine-tuned model is
    saved to ``out/model``."""
    from torch.utils.tensorboard import SummaryWriter
    from transformers import Seq2SeqTrainer, TrainerCallback
    from transformers.integrations import TensorBoardCallback
    from transformers.trainer_utils import get_last_checkpoint

    from .features import LogMel
    from .mix import MixStream, SpeechCollator

    t = mix.training
    model, fe, tok = load_whisper(recipe.model, t["seconds"], recipe.tiny, recipe.seed,
                                  recipe.language, recipe.task)
    model.config.dropout = t["dropout"]
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
    import torch.distributed as dist
    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    stream = MixStream([(sets[s].shards, w) for s, w in mix.data.items()], tok, LogMel(fe),
                       recipe.seed, augmenter, rank=rank, world_size=world)
    losses: list[tuple[int, float]] = []

    class Record(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                losses.append((state.global_step, float(logs["loss"])))

    out.mkdir(parents=True, exist_ok=True)
    trainer = Seq2SeqTrainer(model=model, args=training_arguments(t, out, recipe.seed),
                             train_dataset=stream,
                             data_collator=SpeechCollator(model.config.decoder_start_token_id),
                             callbacks=[Record(), TensorBoardCallback(
                                 SummaryWriter(str(out / "tensorboard")))])
    last = get_last_checkpoint(str(out / "checkpoints")) if (out / "checkpoints").is_dir() else None
    if last:
        log.warning("%s: resuming from %s", mix.name, last)
    result = trainer.train(resume_from_checkpoint=last)
    if mix.lora:
        model = model.merge_and_unload()
    model.save_pretrained(str(out / "model"))
    tok.save_pretrained(str(out / "model"))
    fe.save_pretrained(str(out / "model"))
    return {"steps": int(result.global_step), "train_loss": float(result.training_loss),
            "losses": losses, "resumed_from": Path(last).name if last else None}
