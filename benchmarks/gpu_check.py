"""The check to run when a GPU is at hand (issue #15): how fast, and in how much memory,
whisper-small trains and evaluates with the seed's settings through ``sweaug ablate``'s own code.

What it measures, in one command, offline:

1. builds the bundled sample (``sweaug/sample``) into shards with the code ``sweaug demo`` uses
   (or reuses ``--corpus DIR``, a built corpus with ``cv/train`` and ``cv/test``);
2. writes a recipe (``<out>/gpu-check.yaml``) of one mix — ``cv/train`` with the default
   on-the-fly augmentation (``sweaug/recipes/augment/default.yaml``), the streaming loader with
   2 workers — and runs it with :func:`sweaug.ablate.run.run_recipe` in this process, the same path
   as ``sweaug ablate``. The model is whisper-small's architecture with random weights
   (``model: tiny-random``, ``tiny: {d_model: 768, layers: 12, heads: 12,
   max_target_positions: 448}``, a 30 s window: 241,734,912 parameters, the real multilingual
   tokenizer), or a local model folder (``--model PATH``). On CUDA: the seed's settings (batch
   16 x accumulation 2, lr 1e-5, gradient checkpointing, dropout 0.1) in bf16 where the GPU has
   it, else fp16, with 8-bit AdamW when bitsandbytes imports, else torch's AdamW (the JSON says
   which, and why). On CPU: fp32, torch's AdamW, batch 2 x 1, 3 steps, short generation;
3. evaluates ``--eval-clips`` clips of ``cv/test`` with generation;
4. with ``--probe`` (on by default on CUDA): the largest per-device batch that fits, by doubling
   (2, 4, 8, ... ``--probe-max``) one model's forward + backward + optimizer step on random
   30 s features and ~100-token labels, in the same precision, optimizer and checkpointing.

On a GPU box, from the repository root, after the install of the README (plus the ``gpu``
extra for bitsandbytes)::

    python benchmarks/gpu_check.py --out gpu-check        # ~2-5 minutes; --steps 30 default

The last thing it prints is the JSON it also writes to ``<out>/gpu_check.json``. Read:

* ``device``, ``dtype``, ``optimizer`` (+ ``optimizer_note``, ``fallbacks``): what ran;
* ``s_per_step`` (training wall time / steps, first step included) and ``s_per_step_steady``
  (from the per-step log times, first step excluded); ``samples_per_s``, ``tokens_per_s``
  (label tokens) at ``per_device_batch`` x ``grad_accumulation``;
* ``peak_gpu_memory_gib`` (``torch.cuda.max_memory_allocated`` over training and evaluation;
  null on CPU), ``peak_rss_gib`` (this process; its loader workers: ``peak_rss_children_gib``);
* ``loader_wait_fraction``: the share of the training time the loop waited for batches (above
  ~0.05 after the first batch the loader, not the GPU, sets the pace: more workers);
* ``loss_first`` / ``loss_last``: finite, else the script exits 1;
* ``eval_clips_per_s`` (generation of up to ``eval_max_new_tokens`` tokens: random weights
  generate all of them, a trained model stops earlier, so this is a lower bound);
* ``projected_4000_steps_hours``: one 4,000-step mix at the seed's effective batch of 32
  (scaled by 32 / (batch x accumulation) when the measured batch differs,
  ``projection_scaled_by``; training only, no evaluation);
* ``probe``: the largest batch that fit and the batch/accumulation to put in a recipe.

Flags: ``--steps N`` ``--model PATH`` ``--out DIR`` ``--corpus DIR`` ``--eval-clips K``
``--probe/--no-probe`` ``--probe-max B`` ``--batch B`` ``--grad-accum G``
``--generation-max-length L`` ``--device auto|cpu|cuda`` ``--label/--no-label`` (``sweaug
label``'s teacher on cv/test, fp16/bf16 on CUDA: ``label.clips_per_s``, its peak memory).
"""
from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

FORMAT = "sweaug-gpu-check/1"
RECIPE_NAME = "gpu-check"
MIX = "seed"
SEED_EFFECTIVE_BATCH = 32
PROJECT_STEPS = 4000
# whisper-small: d_model 768, 12+12 layers, 12 heads, FFN 3072, 448 decoder positions, 30 s
WHISPER_SMALL = {"d_model": 768, "layers": 12, "heads": 12, "max_target_positions": 448}
DEFAULT_AUGMENT = REPO / "sweaug" / "recipes" / "augment" / "default.yaml"
EVAL_SET = "cv/test"
TRAIN_SET = "cv/train"


class CheckError(RuntimeError):
    """The check could not measure what it must (a missing key, a non-finite loss)."""


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, help="training steps (default: 30 on CUDA, 3 on CPU)")
    ap.add_argument("--model", help="a local Whisper model folder (default: whisper-small's "
                                    "architecture with random weights, tiny-random)")
    ap.add_argument("--out", type=Path, help="output folder (default: a new temporary folder)")
    ap.add_argument("--corpus", type=Path, help="a built corpus to reuse (with cv/train and "
                                                "cv/test; default: build the bundled sample)")
    ap.add_argument("--eval-clips", type=int, help="cv/test clips to evaluate (default: 8 on "
                                                   "CUDA, 4 on CPU)")
    ap.add_argument("--probe", action=argparse.BooleanOptionalAction, default=None,
                    help="find the largest per-device batch that fits (default: on on CUDA, "
                         "off on CPU)")
    ap.add_argument("--probe-max", type=int, help="largest batch the probe tries (default: "
                                                  "128 on CUDA, 4 on CPU)")
    ap.add_argument("--batch", type=int, help="per-device train batch (default: 16 on CUDA, the "
                                              "seed's; 2 on CPU)")
    ap.add_argument("--grad-accum", type=int, help="gradient accumulation steps (default: 2 on "
                                                   "CUDA, the seed's; 1 on CPU)")
    ap.add_argument("--generation-max-length", type=int,
                    help="training.generation_max_length, with the 4 prompt tokens (default: "
                         "225 on CUDA, the seed's; 16 on CPU)")
    ap.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    ap.add_argument("--label", action=argparse.BooleanOptionalAction, default=None,
                    help="also run `sweaug label`'s teacher path on cv/test (the model as "
                         "teacher, fp16/bf16 on CUDA): clips/s and memory (default: on on "
                         "CUDA, off on CPU)")
    a = ap.parse_args(argv)
    for name in ("steps", "eval_clips", "probe_max", "batch", "grad_accum"):
        v = getattr(a, name)
        if v is not None and v < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if a.generation_max_length is not None and a.generation_max_length < 5:
        ap.error("--generation-max-length must be >= 5 (4 prompt tokens + 1)")
    return a


def settings(a: argparse.Namespace) -> dict:
    """What this machine runs: the seed's settings on CUDA, a small fp32 form on CPU."""
    import torch

    cuda = a.device != "cpu" and torch.cuda.is_available()
    if a.device == "cuda" and not cuda:
        raise CheckError("--device cuda, but torch sees no CUDA device")
    s = {"cuda": cuda, "notes": []}
    if cuda:
        bf16 = torch.cuda.is_bf16_supported()
        s["precision"] = "bf16" if bf16 else "fp16"
        s["notes"].append(f"{s['precision']}: the GPU "
                          + ("supports bf16" if bf16 else "has no bf16 (older than Ampere)"))
        try:
            import bitsandbytes  # noqa: F401
            s["optim"] = "adamw_bnb_8bit"
            s["optimizer_note"] = "8-bit AdamW (bitsandbytes imports), the seed's"
        except Exception as e:  # ImportError, or its CUDA setup failing
            s["optim"] = "adamw_torch"
            s["optimizer_note"] = (f"torch AdamW instead of the seed's 8-bit AdamW: bitsandbytes "
                                   f"does not import ({type(e).__name__}: {e}); pip install the "
                                   f"gpu extra to measure the seed's optimizer")
        defaults = {"steps": 30, "eval_clips": 8, "probe_max": 128, "batch": 16, "grad_accum": 2,
                    "generation_max_length": 225, "probe": True, "label": True}
    else:
        s["precision"] = "fp32"
        s["optim"] = "adamw_torch"
        s["optimizer_note"] = "torch AdamW: no CUDA (bitsandbytes' 8-bit AdamW needs it)"
        defaults = {"steps": 3, "eval_clips": 4, "probe_max": 4, "batch": 2, "grad_accum": 1,
                    "generation_max_length": 16, "probe": False, "label": False}
    for k, v in defaults.items():
        s[k] = getattr(a, k) if getattr(a, k) is not None else v
    s["gradient_checkpointing"] = True
    return s


def recipe_text(s: dict, model: str | None) -> str:
    """The recipe ``sweaug ablate`` would run: one mix of the seed's settings."""
    train = {
        "per_device_train_batch_size": s["batch"], "gradient_accumulation_steps": s["grad_accum"],
        "learning_rate": 1.0e-5, "lr_scheduler_type": "linear", "warmup_steps": 500,
        "max_steps": s["steps"], "fp16": s["precision"] == "fp16",
        "gradient_checkpointing": s["gradient_checkpointing"], "optim": s["optim"],
        "dropout": 0.1, "weight_decay": 0.0,
        "logging_steps": 1,  # every step's loss (first and last) and its log time
        "save_steps": max(100_000, s["steps"] + 1),  # no checkpoint inside the timed steps
        "per_device_eval_batch_size": min(8, s["eval_clips"]),
        "generation_max_length": s["generation_max_length"], "seconds": 30.0,
        "dataloader_num_workers": 2, "shuffle_buffer": 500,
    }
    if s["precision"] == "bf16":
        train["bf16"] = True
    lines = ["# Written by benchmarks/gpu_check.py: the seed's settings, one mix, a few steps.",
             f"name: {RECIPE_NAME}",
             "description: throughput and memory of whisper-small with the seed's settings"]
    if model:
        lines.append(f"model: {json.dumps(str(Path(model).resolve()))}")
    else:
        lines += ["model: tiny-random  # whisper-small's architecture, random weights",
                  "tiny: " + json.dumps(WHISPER_SMALL)]
    lines += ["language: sv", "task: transcribe", "seed: 42", "baseline: false",
              "training:"]
    # (a float in YAML 1.1 needs a dot: json's 1e-05 would be read as a string)
    lines += [f"  {k}: {'1.0e-5' if k == 'learning_rate' else json.dumps(v)}"
              for k, v in train.items()]
    lines += ["evaluation:", f"  sets: [{EVAL_SET}]", f"  max_samples: {s['eval_clips']}",
              "  bootstrap: 100", "mixes:", f"  - name: {MIX}",
              "    description: cv/train with the default on-the-fly augmentation",
              f"    data: {{{TRAIN_SET}: 1.0}}",
              f"    augment: {json.dumps(str(DEFAULT_AUGMENT))}"]
    return "\n".join(lines) + "\n"


def build_sample(corpus: Path, cache: Path, echo) -> float:
    """``sweaug demo``'s step 1: the bundled sample (CV, FLEURS and RixVox layouts) -> shards."""
    from sweaug.build.pipeline import BuildConfig, build
    from sweaug.demo import SAMPLE, demo_cv
    from sweaug.sources import SourceOptions

    t0 = time.perf_counter()
    echo(f"== build the bundled sample -> {corpus}")
    sources = {"cv": demo_cv(), "fleurs": SAMPLE / "fleurs", "rixvox": SAMPLE / "rixvox"}
    build(BuildConfig(out=corpus, workers=2, sources={
        name: SourceOptions(path=path, cache_dir=cache) for name, path in sources.items()}))
    return time.perf_counter() - t0


def steady_seconds_per_step(tb_dir: Path) -> float | None:
    """Seconds per step from the wall times of the per-step loss in the TensorBoard log, the
    first step excluded (its loader start and warm-up); None with fewer than two steps."""
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        return None
    if not tb_dir.is_dir():
        return None
    acc = EventAccumulator(str(tb_dir), size_guidance={"scalars": 0})
    acc.Reload()
    tag = next((t for t in acc.Tags().get("scalars", []) if t.endswith("loss")
                and "eval" not in t), None)
    if tag is None:
        return None
    ev = sorted(acc.Scalars(tag), key=lambda e: e.step)
    if len(ev) < 2 or ev[-1].step == ev[0].step:
        return None
    return (ev[-1].wall_time - ev[0].wall_time) / (ev[-1].step - ev[0].step)


def _r(x, nd=4):
    return None if x is None else round(float(x), nd)


def gib(n) -> float | None:
    return None if n is None else round(n / 2 ** 30, 3)


def summarize(res: dict, s: dict, wall: float, tb_dir: Path) -> dict:
    """The JSON's measurements, from the mix's results.json."""
    import torch

    train = res.get("train") or {}
    missing = [k for k in ("ran_with", "throughput", "losses") if train.get(k) is None]
    if missing:
        raise CheckError(f"results.json's train has no {', '.join(missing)} (an older "
                         f"sweaug.train.finetune?): cannot measure")
    ran, tp = train["ran_with"], train["throughput"]
    need = [k for k in ("seconds", "steps", "samples", "label_tokens", "loader_wait_seconds")
            if tp.get(k) is None]
    if need:
        raise CheckError(f"results.json's train.throughput has no {', '.join(need)}")
    ev = (res.get("eval") or {}).get(EVAL_SET)
    if not ev:
        raise CheckError(f"results.json has no evaluation of {EVAL_SET}")
    absent = []
    steps, seconds = int(tp["steps"]), float(tp["seconds"])
    if steps < 1 or seconds <= 0:
        raise CheckError(f"no training measured (steps {steps}, seconds {seconds})")
    s_step = seconds / steps
    steady = steady_seconds_per_step(tb_dir)
    first = float(tp.get("first_batch_seconds") or 0.0)
    wait = float(tp["loader_wait_seconds"])
    if ev.get("clips_per_second") is not None:
        eval_cps = float(ev["clips_per_second"])
    else:
        absent.append(f"eval.{EVAL_SET}.clips_per_second (computed as n / seconds)")
        eval_cps = ev["n"] / ev["seconds"] if ev.get("seconds") else None
    eff = s["batch"] * s["grad_accum"] * int(train.get("processes") or 1)
    scale = SEED_EFFECTIVE_BATCH / eff
    basis = steady if steady is not None else s_step
    losses = [(int(st), float(v)) for st, v in train["losses"]]
    dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[
        ran["precision"]]
    name = torch.cuda.get_device_name() if ran["device"] == "cuda" else ran["device"]
    return {
        "device": name, "device_type": ran["device"],
        "dtype": str(dtype).replace("torch.", ""), "precision": ran["precision"],
        "optimizer": ran["optimizer"], "optimizer_note": s["optimizer_note"],
        "attention": ran.get("attention"),
        "gradient_checkpointing": ran.get("gradient_checkpointing"),
        "fallbacks": ran.get("fallbacks", []),
        "per_device_batch": s["batch"], "grad_accumulation": s["grad_accum"],
        "effective_batch": eff, "processes": int(train.get("processes") or 1),
        "steps": steps, "training_seconds": _r(seconds, 3),
        "s_per_step": _r(s_step), "s_per_step_steady": _r(steady),
        "samples": int(tp["samples"]), "samples_per_s": _r(tp["samples"] / seconds, 3),
        "label_tokens": int(tp["label_tokens"]),
        "tokens_per_s": _r(tp["label_tokens"] / seconds, 2),
        "loader_wait_seconds": _r(wait, 3), "first_batch_seconds": _r(first, 3),
        "loader_wait_fraction": _r(wait / seconds),
        "loader_wait_fraction_after_first_batch":
            _r((wait - first) / (seconds - first)) if seconds > first else None,
        "loss_first": losses[0][1] if losses else None,
        "loss_last": losses[-1][1] if losses else None,
        "losses": [[st, v] for st, v in losses],
        "train_loss": train.get("train_loss"),
        "eval_clips": ev.get("n"), "eval_seconds": ev.get("seconds"),
        "eval_clips_per_s": _r(eval_cps, 3), "eval_max_new_tokens": ev.get("max_new_tokens"),
        "eval_wer": ev.get("wer"),
        "projected_4000_steps_seconds": round(basis * PROJECT_STEPS * scale, 1),
        "projected_4000_steps_hours": round(basis * PROJECT_STEPS * scale / 3600, 3),
        "projection_basis": "s_per_step_steady" if steady is not None else "s_per_step",
        "projection_scaled_by": round(scale, 4),
        "projection_note": (f"{PROJECT_STEPS} steps x {basis:.4g} s/step"
                            + (f" x 32/{eff}: the measured effective batch is {eff}, not the "
                               f"seed's 32 (assumes time grows linearly with the batch)"
                               if eff != SEED_EFFECTIVE_BATCH else
                               " at the seed's effective batch of 32")
                            + "; training only (no evaluation, checkpoints every 1,000 steps "
                              "not timed)"),
        "run_recipe_wall_seconds": round(wall, 1),
        "missing_keys": absent,
    }


def probe(s: dict, model_name: str, tiny: dict, echo) -> dict:
    """The largest per-device batch whose forward + backward + optimizer step (twice: the
    second with the optimizer's state allocated) fits, by doubling from 2."""
    import torch

    from sweaug.train.finetune import enable_checkpointing, load_whisper

    dev = "cuda" if s["cuda"] else "cpu"
    gc.collect()  # the trained and the evaluated model of run_recipe, if anything holds them
    before = None
    if s["cuda"]:
        torch.cuda.empty_cache()
        before = torch.cuda.memory_allocated()
    model, _, tok = load_whisper(model_name, 30.0, tiny, 42, "sv", "transcribe", dropout=0.1,
                                 attention="sdpa")
    model.config.use_cache = False
    enable_checkpointing(model, reentrant=False)  # what training_arguments asks the Trainer for
    model.to(dev).train()
    frames = 2 * int(model.config.max_source_positions)
    n_labels = max(1, min(100, s["generation_max_length"] - 4,
                          int(model.config.max_target_positions) - 1))
    amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(s["precision"])
    scaler = torch.amp.GradScaler("cuda") if s["precision"] == "fp16" else None
    tries, best, oom = [], None, None
    b = 2
    while b <= s["probe_max"]:
        opt = None
        try:
            if s["optim"] == "adamw_bnb_8bit":
                import bitsandbytes as bnb
                opt = bnb.optim.AdamW8bit(model.parameters(), lr=1e-5)
            else:
                opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
            g = torch.Generator().manual_seed(b)
            x = torch.randn(b, 80, frames, generator=g).to(dev)
            labels = torch.randint(0, 50257, (b, n_labels), generator=g).to(dev)
            if s["cuda"]:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            times = []
            for _ in range(2):
                t0 = time.perf_counter()
                with torch.autocast(dev, dtype=amp, enabled=amp is not None):
                    loss = model(input_features=x, labels=labels).loss
                if scaler:
                    scaler.scale(loss).backward()
                    scaler.step(opt)
                    scaler.update()
                else:
                    loss.backward()
                    opt.step()
                opt.zero_grad(set_to_none=True)
                if s["cuda"]:
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
            peak = torch.cuda.max_memory_allocated() if s["cuda"] else None
            tries.append({"batch": b, "fits": True, "s_per_step": _r(times[-1]),
                          "peak_gpu_memory_gib": gib(peak)})
            echo(f"probe: batch {b} fits ({times[-1]:.3f} s/step"
                 + (f", peak {gib(peak)} GiB)" if peak else ")"))
            best = b
        except (torch.cuda.OutOfMemoryError, RuntimeError) as e:
            # bitsandbytes' kernels report it as a RuntimeError "CUDA error: out of memory"
            if not isinstance(e, torch.cuda.OutOfMemoryError) \
                    and "out of memory" not in str(e):
                raise
            oom = str(e).splitlines()[0][:200]
            tries.append({"batch": b, "fits": False, "error": "CUDA out of memory"})
            echo(f"probe: batch {b} does not fit (CUDA out of memory)")
        finally:
            model.zero_grad(set_to_none=True)
            opt = x = labels = loss = None  # noqa: F841
            gc.collect()
            if s["cuda"]:
                torch.cuda.empty_cache()
        if oom:
            break
        b *= 2
    del model
    gc.collect()
    if s["cuda"]:
        torch.cuda.empty_cache()
    out = {"tries": tries, "largest_batch": best, "label_tokens": n_labels,
           "input_frames": frames, "precision": s["precision"], "optimizer": s["optim"],
           "gradient_checkpointing": True, "limit": s["probe_max"],
           "gpu_memory_in_use_before_gib": gib(before),
           "stopped_by": "out of memory" if oom else f"--probe-max {s['probe_max']}"}
    if best is None:
        out["advice"] = "not even batch 2 fits"
    else:
        bs = min(best, SEED_EFFECTIVE_BATCH)
        ga = max(1, SEED_EFFECTIVE_BATCH // bs)
        out["recommended"] = {"per_device_train_batch_size": bs,
                              "gradient_accumulation_steps": ga}
        out["advice"] = (f"per_device_train_batch_size: {bs}, gradient_accumulation_steps: "
                         f"{ga} keeps the seed's effective batch of {SEED_EFFECTIVE_BATCH}"
                         + ("" if oom else f" (batch {best} fits; larger ones were not tried: "
                                           f"--probe-max)"))
    return out


def loss_problem(losses: list) -> str | None:
    """Why the logged losses (``[[step, loss], ...]``) fail the check (None: all finite)."""
    if not losses:
        return "no training loss was logged"
    bad = [[st, v] for st, v in losses if v is None or not math.isfinite(v)]
    if bad:
        return f"{len(bad)} of {len(losses)} training losses are not finite: {bad[:5]}"
    return None


def dumps(report: dict) -> str:
    """The JSON, one top-level key a line (the losses and the probe each on one line)."""
    return "{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                               for k, v in report.items()) + "\n}"


def label_check(a: argparse.Namespace, corpus: Path, out: Path, echo) -> dict:
    """``sweaug label``'s teacher on cv/test: ``--model``, else whisper-small's architecture with
    random weights saved to a folder (a random teacher writes up to its token budget: a lower
    bound on clips/s). Every clip is transcribed; test samples are never filtered."""
    import torch

    from sweaug.label.checks import Thresholds
    from sweaug.label.stage import label_corpus
    from sweaug.label.teacher import resolve_teacher

    folder = Path(a.model) if a.model else out / "teacher"
    if not a.model and not (folder / "config.json").exists():
        from sweaug.train.whisper import tiny_whisper

        for part in tiny_whisper(seconds=30.0, seed=0, **WHISPER_SMALL):
            part.save_pretrained(str(folder))
    spec = resolve_teacher(str(folder), device=a.device)
    labelled = out / "labelled"
    if labelled.exists():
        shutil.rmtree(labelled)
    cuda = spec.device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    m = label_corpus(corpus / "cv", labelled, spec, Thresholds(max_repeats=0,
                                                                language_check=False),
                     splits=("test",))
    wall = time.perf_counter() - t0
    split = next(iter(m["sources"].values()))["splits"]["test"]
    peak = torch.cuda.max_memory_allocated() if cuda else None
    return {"device": spec.device, "dtype": spec.dtype, "batch_size": spec.batch_size,
            "clips": split["transcribed"], "kept": split["samples"], "drops": split["drops"],
            "seconds_with_load": _r(wall, 2),
            "clips_per_s": _r(split["transcribed"] / wall, 2) if wall > 0 else None,
            "peak_gpu_memory_gib": gib(peak)}


def main(argv=None) -> int:
    a = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never the network
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")

    def echo(*x, **k):
        print(*x, **k, flush=True)

    import torch

    s = settings(a)
    out = (a.out or Path(tempfile.mkdtemp(prefix="sweaug-gpu-check-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    build_s = None
    if a.corpus:
        corpus = a.corpus.resolve()
    else:
        corpus = out / "corpus"
        if (corpus / "manifest.json").exists():
            echo(f"== reusing the sample built earlier in {corpus}")
        else:
            build_s = build_sample(corpus, out / "cache", echo)
    recipe = out / f"{RECIPE_NAME}.yaml"
    from sweaug.files import atomic_write_bytes
    atomic_write_bytes(recipe, recipe_text(s, a.model).encode("utf-8"))
    runs = out / "runs"
    mix_dir = runs / RECIPE_NAME / MIX
    if mix_dir.exists():  # this check's own earlier run: measure again, never skip as done
        shutil.rmtree(mix_dir)

    from sweaug.ablate.run import run_recipe

    echo(f"== train {s['steps']} steps and evaluate {s['eval_clips']} clips ({recipe})")
    if s["cuda"]:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run_recipe(recipe, runs, corpus=corpus, echo=echo, device=a.device)
    wall = time.perf_counter() - t0
    peak_gpu = torch.cuda.max_memory_allocated() if s["cuda"] else None
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    rss_children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024

    res_path = mix_dir / "results.json"
    res = json.loads(res_path.read_text(encoding="utf-8"))
    report = {"format": FORMAT, "ok": True}
    report.update(summarize(res, s, wall, mix_dir / "tensorboard"))
    model_desc = a.model or ("tiny-random " + json.dumps(WHISPER_SMALL)
                             + " (whisper-small's architecture, random weights)")
    from sweaug.train.device import parameter_counts
    try:
        params = parameter_counts(a.model or "tiny-random", {} if a.model else WHISPER_SMALL,
                                  30.0, None)[0]
    except Exception:  # a model folder whose config this transformers cannot read
        params = None
    import transformers
    try:
        import bitsandbytes
        bnb_version = bitsandbytes.__version__
    except Exception:
        bnb_version = None
    report.update({
        "model": model_desc, "parameters": params,
        "peak_gpu_memory_bytes": peak_gpu, "peak_gpu_memory_gib": gib(peak_gpu),
        "peak_rss_bytes": rss, "peak_rss_gib": gib(rss),
        "peak_rss_children_gib": gib(rss_children),
        "notes": s["notes"], "build_seconds": _r(build_s, 1),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "bitsandbytes": bnb_version,
        "cuda": torch.version.cuda if s["cuda"] else None,
        "corpus": str(corpus), "recipe": str(recipe), "results": str(res_path),
        "probe": None, "label": None,
    })
    problem = loss_problem(report["losses"])
    if problem:
        report["ok"] = False
        report["error"] = problem
    if s["probe"] and report["ok"]:
        echo(f"== probe the largest per-device batch (2, 4, ... {s['probe_max']})")
        report["probe"] = probe(s, a.model or "tiny-random", {} if a.model else WHISPER_SMALL,
                                echo)
        echo(f"probe: largest batch that fits: {report['probe']['largest_batch']}; "
             f"{report['probe']['advice']}")
    if s["label"] and report["ok"]:
        echo("== label cv/test with the model as teacher (sweaug label's path)")
        try:
            report["label"] = label_check(a, corpus, out, echo)
            echo(f"label: {report['label']['clips_per_s']} clips/s in "
                 f"{report['label']['dtype']}")
        except Exception as e:  # the training numbers above still stand: recorded, not lost
            report["label"] = {"error": f"{type(e).__name__}: {e}"}
            report["ok"] = False
            report["error"] = f"the label step failed: {report['label']['error']}"
    text = dumps(report)
    atomic_write_bytes(out / "gpu_check.json", (text + "\n").encode("utf-8"))
    echo(f"== wrote {out / 'gpu_check.json'}")
    print(text, flush=True)
    if not report["ok"]:
        print(f"gpu_check: {report['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CheckError as e:
        print(f"gpu_check: {e}", file=sys.stderr)
        sys.exit(2)
