"""``sweaug demo``: the whole pipeline, offline, on the sample that ships inside the package.

1. build the bundled sample (CV-, FLEURS- and RixVox-layout espeak-ng Swedish speech) into
   shards, with the manifest and the leakage report;
2. augment the CV part with the shipped ``noisy`` recipe (the bundled noise and rooms): its
   test split is a held-out *noisy* evaluation set;
3. ablate a recipe on a tiny Whisper (built from a config, with the real multilingual
   tokenizer; a 3.2 s window, the longest clip is 3.1 s): clean vs clean + noisy copies,
   evaluated on the clean and the noisy held-out sets, with the untrained model as the
   baseline row. The two mixes train side by side, one process and one torch thread each
   (``--workers 1``: one after the other), then the report merges them (``sweaug report``);
   the recipe pins ``torch_threads: 1``, so ``sweaug ablate demo.yaml`` reproduces them;
4. print the report table and where report.md, results.csv and wer.png are.

Everything is written under ``--out``; nothing outside it but caches. ``--quick`` runs the same
stages with few steps and capped evaluation (for CI and the impatient).
"""
from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample"

# the tiny model's training settings, shared by both demos
TRAINING = """\
training:
  per_device_train_batch_size: 8
  gradient_accumulation_steps: 1
  learning_rate: 1.5e-3
  warmup_steps: {warmup}
  max_steps: {steps}
  seconds: {seconds}
  logging_steps: {log_every}
  save_steps: {save_every}
  dropout: 0.0
  dataloader_num_workers: 0
  fp16: false
  # the demo's 2+2-layer model needs no activation checkpointing (it would cost time, not save
  # memory that matters)
  gradient_checkpointing: false
  # torch's fused AdamW: a CPU step of this model takes 23 % less time (benchmarks/tiny_step.py)
  optim: adamw_torch_fused
  # trained from scratch: a softmax over the training transcripts' tokens (not all 51,865)
  vocabulary: transcripts
  torch_threads: 1
"""

RECIPE = """\
# Written by `sweaug demo`: a tiny Whisper trained from scratch on the bundled sample.
name: demo
description: clean vs clean+noisy training data, tiny Whisper, evaluated clean and noisy
model: tiny-random
tiny: {{d_model: 128, layers: 2, heads: 4}}
language: sv
task: transcribe
seed: {seed}
{training}evaluation:
  sets: [cv/test, cv-noisy/test]
  max_samples: {max_samples}
  max_new_tokens: 40
  batch_size: 16
  bootstrap: 1000
reference: clean
mixes:
  - name: clean
    description: the clean CV-layout training split
    data: {{cv/train: 1.0}}
  - name: clean+noisy
    description: the clean split plus its noisy copies (AddBackgroundNoise, rooms), 1:1
    data: {{cv/train: 1.0, cv-noisy/train: 1.0}}
"""


def demo_cv() -> Path:
    """The CV-layout part of the demo: the larger, varied ``sample/demo`` when it ships, else
    the small ``sample/cv``."""
    return SAMPLE / "demo" if (SAMPLE / "demo").is_dir() else SAMPLE / "cv"


LONG_SECONDS = 8.0  # the --long demo's window: 3-5 of the demo's 1.2-2.8 s clips

LONG_RECIPE = """\
# Written by `sweaug demo --long`: Whisper's window format vs single sentences, tiny Whisper
# with an {seconds:g}-s window trained from scratch on the bundled demo corpus: the same
# utterances and the same number of steps of 8 encoder inputs each (the same encoder compute;
# a window carries ~3.7 of the demo's sentences, so the window mixes see more speech per step).
# recipes/ablation/windows.yaml compares them on equal passes over the data instead.
name: demo-long
description: sentences vs {seconds:g}-s windows vs windows + no-speech windows, tiny Whisper
model: tiny-random
tiny: {{d_model: 128, layers: 2, heads: 4, max_target_positions: 128}}
language: sv
task: transcribe
seed: {seed}
{training}evaluation:
  sets: [cv/test, cv-win-ns/test]
  max_samples: {max_samples}
  max_new_tokens: 100
  batch_size: 16
  bootstrap: 1000
  long_form:
    {{set: cv/test, recordings: {recordings}, min_seconds: {lf_min}, max_seconds: {lf_max}}}
reference: sentences
mixes:
  - name: sentences
    description: one sentence per sample, <|notimestamps|>, no prompt
    data: {{cv/train: 1.0}}
  - name: windows
    description: the same sentences in {seconds:g}-s windows (timestamps, prompts on half)
    data: {{cv-win/train: 1.0}}
  - name: windows+no-speech
    description: the windows plus 15 % no-speech windows (bundled noise, near-silence)
    data: {{cv-win-ns/train: 1.0}}
"""
LONG_JOBS = (("baseline", "sentences"), ("windows",), ("windows+no-speech",))


def run_long_demo(out: Path, quick: bool = False, seed: int = 13, workers: int = 2,
                  echo=print) -> dict:
    """``sweaug demo --long``: the demo corpus's CV part built, packed into windows twice
    (without and with no-speech windows), and the three mixes of :data:`LONG_RECIPE` ablated:
    sentence WER, window metrics (timestamp error, hallucination rate) and long-form WER."""
    from .ablate.run import run_recipe
    from .build.manifest import format_table
    from .build.pipeline import BuildConfig, build
    from .files import atomic_write_bytes
    from .sources import SourceOptions
    from .windows.plan import Settings
    from .windows.stage import format_summary, windows_corpus

    out = Path(out).resolve()
    corpus = out / "corpus"
    echo(f"== 1/3 build the demo corpus -> {corpus}")
    manifest = build(BuildConfig(out=corpus, workers=workers, sources={
        "cv": SourceOptions(path=demo_cv(), cache_dir=out / "cache")}))
    echo(format_table(manifest))
    for name, frac in (("cv-win", 0.0), ("cv-win-ns", 0.15)):
        echo(f"\n== 2/3 sweaug windows corpus/cv --seconds {LONG_SECONDS:g}"
             + (f" --no-speech-fraction {frac:g}" if frac else "") + f" -> {corpus / name}")
        wm = windows_corpus(corpus / "cv", corpus / name, Settings(
            seconds=LONG_SECONDS, no_speech_fraction=frac), seed, workers=workers)
        echo(format_summary(wm))
    recipe = out / "demo-long.yaml"
    steps = 20 if quick else 500
    training = TRAINING.format(warmup=5 if quick else 30, steps=steps, seconds=LONG_SECONDS,
                               log_every=10 if quick else 50, save_every=steps)
    atomic_write_bytes(recipe, LONG_RECIPE.format(
        seed=seed, seconds=LONG_SECONDS, training=training, max_samples=16 if quick else "null",
        recordings=2 if quick else 6, lf_min=10 if quick else 15,
        lf_max=20 if quick else 30).encode())
    echo(f"\n== 3/3 ablate {recipe} ({'quick: ' if quick else ''}{steps} steps per mix)")
    if workers < 2:
        return run_recipe(recipe, out / "runs", corpus=corpus, echo=echo)
    return _ablate_side_by_side(recipe, out / "runs", corpus, echo, LONG_JOBS, "demo-long")


def run_demo(out: Path, quick: bool = False, seed: int = 13, workers: int = 2, echo=print
             ) -> dict:
    from .ablate.run import run_recipe
    from .augment import load_recipe
    from .augment.offline import augment_corpus
    from .build.pipeline import BuildConfig, build
    from .build.manifest import format_table
    from .files import atomic_write_bytes
    from .sources import SourceOptions

    out = Path(out).resolve()
    cache = out / "cache"
    corpus = out / "corpus"
    echo(f"== 1/3 build the bundled sample -> {corpus}")
    sources = {"cv": demo_cv(), "fleurs": SAMPLE / "fleurs", "rixvox": SAMPLE / "rixvox"}
    manifest = build(BuildConfig(out=corpus, workers=workers, sources={
        name: SourceOptions(path=path, cache_dir=cache) for name, path in sources.items()}))
    echo(format_table(manifest))
    echo(f"\n== 2/3 augment cv with recipes/augment/noisy.yaml -> {corpus / 'cv-noisy'}")
    noisy = load_recipe(Path(__file__).resolve().parent / "recipes" / "augment" / "noisy.yaml")
    aug = augment_corpus(corpus / "cv", noisy, copies=1, seed=seed, out=corpus / "cv-noisy",
                         workers=workers, cache_dir=cache)
    echo(format_table(aug))
    # full: two mixes of 1,500 steps side by side (measured: each job, training and evaluation,
    # took ~410 s; the whole demo 7 min 5 s) keep the demo within 10 minutes
    steps = 60 if quick else 1500
    recipe = out / "demo.yaml"
    training = TRAINING.format(warmup=max(steps // 30, 5), steps=steps, seconds=3.2,
                               log_every=10 if quick else 50, save_every=steps // 2)
    atomic_write_bytes(recipe, RECIPE.format(
        seed=seed, training=training, max_samples=16 if quick else "null").encode())
    echo(f"\n== 3/3 ablate {recipe} ({'quick: ' if quick else ''}{steps} steps per mix)")
    if workers < 2:
        return run_recipe(recipe, out / "runs", corpus=corpus, echo=echo)
    return _ablate_side_by_side(recipe, out / "runs", corpus, echo)


PROGRESS_EVERY = 60  # seconds between progress lines of the side-by-side jobs


def _last_progress(log: Path) -> str:
    """The latest training progress line in a job's log ('' before the first)."""
    from .train.finetune import PROGRESS

    lines = [l for l in log.read_text(errors="replace").splitlines() if l.startswith(PROGRESS)]
    return lines[-1][len(PROGRESS):].strip() if lines else ""


# the untrained baseline is evaluated with the first mix: its evaluation is short
JOBS = (("baseline", "clean"), ("clean+noisy",))


def _ablate_side_by_side(recipe: Path, runs: Path, corpus: Path, echo, jobs=JOBS,
                         name: str = "demo") -> dict:
    """``sweaug ablate RECIPE --mix ...`` for each of ``jobs`` in its own process, at once;
    then ``sweaug report`` of the run folder. Each job's output goes to ``<runs>/logs/``."""
    import subprocess
    import sys
    import time

    from .ablate.run import report_run
    from .ablate.recipe import AblationError

    logs = runs / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    procs = []
    for job in jobs:
        log = logs / f"ablate-{'-'.join(job)}.log"
        cmd = [sys.executable, "-m", "sweaug.cli", "ablate", str(recipe), "--corpus", str(corpus),
               "--out", str(runs)] + [a for name in job for a in ("--mix", name)]
        with open(log, "wb") as f:
            # cwd: the runs folder (every path above is absolute): `-m sweaug.cli` imports from
            # the cwd first, and the user's may hold a folder named sweaug
            procs.append((job, log, subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT,
                                                     cwd=runs)))
        echo(f"{', '.join(job)}: started (log: {log})")
    t0, failed, running = time.monotonic(), [], list(procs)
    next_report = t0 + PROGRESS_EVERY
    try:
        while running:
            time.sleep(1)
            for job, log, proc in list(running):
                code = proc.poll()
                if code is None:
                    continue
                running.remove((job, log, proc))
                echo(f"{', '.join(job)}: {'done' if code == 0 else f'FAILED (exit {code})'} after "
                     f"{time.monotonic() - t0:.0f} s")
                if code != 0:
                    failed.append(f"{', '.join(job)} (exit {code}; last lines of {log}):\n"
                                  + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
            if running and time.monotonic() >= next_report:
                next_report += PROGRESS_EVERY
                latest = [_last_progress(log) for _, log, _ in running]
                echo(f"  [{time.monotonic() - t0:.0f} s] " + "; ".join(l for l in latest if l))
    except BaseException:  # interrupted: stop the jobs (a rerun resumes from their checkpoints)
        for _, _, proc in running:
            proc.terminate()
        raise
    if failed:
        raise AblationError("sweaug demo: an ablation job failed — " + "\n".join(failed)
                            + "\nFinished models are kept: run `sweaug demo` again to resume.")
    return report_run(runs / name, echo=echo)
