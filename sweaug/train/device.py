"""What this machine will run each model with, decided — and checked — before anything trains.

:func:`plan_training` turns a mix's training settings into what the device actually runs:
``{"device", "device_name", "precision", "optimizer", "attention", "gradient_checkpointing",
"checkpointing_reentrant", "fallbacks"}``. On a machine without CUDA (``--device auto``) the
seed's fp16/bf16 becomes fp32 and an 8-bit bitsandbytes optimizer becomes torch's AdamW; each
such change is a *fallback*, said once and recorded (results.json, the report), and the plan is
part of the model's hash (:func:`run_key`), so a CPU run never counts as done for a GPU rerun
and a checkpoint of one is never resumed by the other. Gradient checkpointing is honoured on
every device (it was silently off on CPU before).

What cannot run is a *problem*, not a fallback — ``--device cuda`` without CUDA, bf16 on a GPU
older than Ampere, an 8-bit optimizer on CUDA without bitsandbytes (the ``gpu`` extra), an
optimizer transformers does not know, LoRA without peft, too little disk for the checkpoints —
and ``sweaug.ablate.run.plan_models`` collects them for every selected model, so ``sweaug ablate``
stops with one message before the first step of the first mix (the seed's ``seed-table`` used
to fail with an ImportError after the baseline and the whole 4,000-step ``tutorial`` mix).

Evaluation (:func:`plan_evaluation`) runs on CUDA in the training precision with SDPA
attention; on CPU in fp32.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

DEVICES = ("auto", "cuda", "cpu")
ATTENTION = "sdpa"  # torch's scaled_dot_product_attention (flash / memory-efficient kernels)
# bytes of optimizer state per trainable parameter (two moments): fp32 AdamW and 8-bit AdamW
_STATE_BYTES = {"8bit": 2, "default": 8}
CHECKPOINTS_KEPT = 2  # the Trainer's save_total_limit (train/finetune.py)


def _machine() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    m = {"cuda": cuda, "name": "cpu", "capability": None}
    if cuda:
        m["name"] = f"cuda:{torch.cuda.current_device()} ({torch.cuda.get_device_name()})"
        m["capability"] = tuple(torch.cuda.get_device_capability())
    return m


def bitsandbytes_problem() -> str | None:
    """Why ``import bitsandbytes`` fails (None: it imports)."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as e:  # ImportError, or its CUDA setup failing (RuntimeError)
        return f"{type(e).__name__}: {e}"
    return None


def _is_8bit(optim: str) -> bool:
    return "bnb" in optim or "8bit" in optim


def precision_of(t: dict) -> str:
    """The precision a mix's settings ask for: ``fp32``, ``fp16`` or ``bf16``."""
    return "bf16" if t.get("bf16") else "fp16" if t.get("fp16") else "fp32"


def plan_training(t: dict, device: str = "auto", lora: bool = False, machine: dict | None = None
                  ) -> tuple[dict, list[str]]:
    """``(ran_with, problems)`` for one mix's training settings ``t`` on this machine."""
    m = machine or _machine()
    problems, fallbacks = [], []
    if device not in DEVICES:
        problems.append(f"--device must be one of {', '.join(DEVICES)}, got {device!r}")
    cuda = m["cuda"] and device != "cpu"
    if device == "cuda" and not m["cuda"]:
        problems.append("--device cuda, but torch sees no CUDA device (torch "
                        f"{_torch_version()}; a CPU build, or no driver?)")
    asked, optim = precision_of(t), t["optim"]
    if t.get("fp16") and t.get("bf16"):
        problems.append("fp16 and bf16 are both true: choose one")
    precision = asked
    if asked != "fp32" and not cuda:
        if device == "cuda":
            pass  # the missing CUDA is the problem already
        else:
            precision = "fp32"
            fallbacks.append(f"{asked} -> fp32 (no CUDA)")
    if cuda and asked == "bf16" and (m["capability"] or (0, 0)) < (8, 0):
        problems.append(f"bf16 needs a GPU of compute capability 8.0 (Ampere) or newer; "
                        f"{m['name']} is {'.'.join(map(str, m['capability'] or ()))}: set "
                        f"fp16: true instead (a Colab T4 runs fp16)")
    known = _optimizer_names()
    if known is not None and optim not in known:
        problems.append(f"optim {optim!r} is not an optimizer transformers knows "
                        f"(e.g. adamw_torch, adamw_torch_fused, adamw_bnb_8bit)")
    elif _is_8bit(optim):
        if cuda:
            why = bitsandbytes_problem()
            if why:
                problems.append(f"optim {optim} needs bitsandbytes, which does not import "
                                f"({why}): pip install -c constraints.txt -e \".[gpu]\", or set "
                                f"optim: adamw_torch_fused")
        elif device != "cuda":
            fallbacks.append(f"{optim} -> adamw_torch (bitsandbytes' 8-bit optimizers need "
                             f"CUDA)")
            optim = "adamw_torch"
    if lora:
        try:
            import peft  # noqa: F401
        except ImportError as e:
            problems.append(f"LoRA needs peft ({e}): pip install -c constraints.txt -e "
                            f"\".[train]\"")
    ckpt = bool(t["gradient_checkpointing"])
    ran = {"device": "cuda" if cuda else "cpu", "device_name": m["name"] if cuda else "cpu",
           "precision": precision, "optimizer": optim, "attention": ATTENTION,
           "gradient_checkpointing": ckpt,
           "checkpointing_reentrant": bool(t.get("checkpointing_reentrant", False)) if ckpt
           else None,
           "fallbacks": fallbacks}
    return ran, problems


def plan_evaluation(t: dict | None, device: str = "auto", machine: dict | None = None) -> dict:
    """``{"device", "device_name", "precision", "attention"}`` of an evaluation: on CUDA the
    training precision ``t`` asks for (fp16/bf16; bf16 only where the GPU has it), else fp32."""
    m = machine or _machine()
    cuda = m["cuda"] and device != "cpu"
    precision = precision_of(t or {}) if cuda else "fp32"
    if precision == "bf16" and (m["capability"] or (0, 0)) < (8, 0):
        precision = "fp16"
    return {"device": "cuda" if cuda else "cpu", "device_name": m["name"] if cuda else "cpu",
            "precision": precision, "attention": ATTENTION}


def torch_dtype(precision: str):
    import torch

    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def run_key(recipe_hash: str, plan: dict) -> str:
    """The model's hash: the recipe's settings (``Recipe.mix_hash``) and what the device runs
    (without the GPU's name: the same settings on another GPU model are the same run)."""
    kept = {k: v for k, v in plan.items() if k not in ("device_name", "fallbacks")}
    return hashlib.sha256(json.dumps([recipe_hash, kept], sort_keys=True).encode()
                          ).hexdigest()[:16]


def _torch_version() -> str:
    import torch

    return torch.__version__


def _optimizer_names() -> set[str] | None:
    try:
        from transformers.training_args import OptimizerNames
    except ImportError:
        return None
    return {o.value for o in OptimizerNames}


def parameter_counts(model: str, tiny: dict, seconds: float, lora: dict | None
                     ) -> tuple[int, int]:
    """``(all, trainable)`` parameters of the model a mix trains, counted on torch's meta
    device (nothing is allocated or downloaded but the config)."""
    import torch
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    if model == "tiny-random":
        d = int(tiny.get("d_model", 128))
        heads, layers = int(tiny.get("heads", 4)), int(tiny.get("layers", 2))
        cfg = WhisperConfig(vocab_size=51865, num_mel_bins=80, d_model=d, encoder_layers=layers,
                            decoder_layers=layers, encoder_attention_heads=heads,
                            decoder_attention_heads=heads, encoder_ffn_dim=4 * d,
                            decoder_ffn_dim=4 * d, max_source_positions=round(50 * seconds),
                            max_target_positions=int(tiny.get("max_target_positions", 128)))
    else:
        from .pretrained import load_kwargs

        cfg = WhisperConfig.from_pretrained(model, **load_kwargs(model))
    with torch.device("meta"):
        net = WhisperForConditionalGeneration(cfg)
    total = sum(p.numel() for p in net.parameters())
    if not lora:
        return total, total
    r = int(lora.get("r", 32))
    targets = tuple(lora.get("target_modules", ["q_proj", "v_proj"]))
    trainable = sum(r * (mod.in_features + mod.out_features)
                    for name, mod in net.named_modules()
                    if isinstance(mod, torch.nn.Linear) and name.split(".")[-1] in targets)
    return total, trainable


def checkpoint_bytes(total: int, trainable: int, plan: dict, lora: bool) -> int:
    """Disk a mix needs: ``CHECKPOINTS_KEPT`` + 1 checkpoints (the Trainer writes a new one
    before it deletes the oldest) of weights (fp32; the adapter only with LoRA), optimizer
    state and the scheduler, plus the final model (fp32, LoRA merged)."""
    state = _STATE_BYTES["8bit" if _is_8bit(plan["optimizer"]) else "default"]
    weights = 4 * (trainable if lora else total)
    per_checkpoint = weights + state * trainable + (1 << 20)
    return (CHECKPOINTS_KEPT + 1) * per_checkpoint + 4 * total


def free_bytes(folder: Path) -> int:
    """Free space of the file system that holds ``folder`` (its nearest existing parent)."""
    p = Path(folder).resolve()
    while not p.exists():
        p = p.parent
    return shutil.disk_usage(p).free


def gib(n: float) -> str:
    return f"{n / 2 ** 30:.1f} GiB"
