"""``sweaug demo``: the whole pipeline, offline, on the sample that ships inside the package.

1. build the bundled sample (CV-, FLEURS- and RixVox-layout espeak-ng Swedish speech) into
   shards, with the manifest and the leakage report;
2. augment the CV part with the shipped ``noisy`` recipe (the bundled noise and rooms): its
   test split is a held-out *noisy* evaluation set;
3. ablate a recipe on a tiny Whisper (built from a config, with the real multilingual
   tokenizer; a 3.2 s window, the longest clip is 3.1 s): clean vs clean + noisy copies,
   evaluated on the clean and the noisy held-out sets, with the untrained model as the
   baseline row;
4. print the report table and where report.md, results.csv and wer.png are.

Everything is written under ``--out``; nothing outside it but caches. ``--quick`` runs the same
stages with few steps and capped evaluation (for CI and the impatient).
"""
from __future__ import annotations

from pathlib import Path

SAMPLE = Path(__file__).resolve().parent / "sample"

RECIPE = """\
# Written by `sweaug demo`: a tiny Whisper trained from scratch on the bundled sample.
name: demo
description: clean vs clean+noisy training data, tiny Whisper, evaluated clean and noisy
model: tiny-random
tiny: {{d_model: 128, layers: 2, heads: 4}}
language: sv
task: transcribe
seed: {seed}
training:
  per_device_train_batch_size: 8
  gradient_accumulation_steps: 1
  learning_rate: 1.5e-3
  warmup_steps: {warmup}
  max_steps: {steps}
  seconds: 3.2
  logging_steps: {log_every}
  save_steps: {save_every}
  dropout: 0.0
  dataloader_num_workers: 0
evaluation:
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


def run_demo(out: Path, quick: bool = False, seed: int = 13, workers: int = 2, echo=print
             ) -> dict:
    from .ablate import run_recipe
    from .augment import load_recipe
    from .augment.offline import augment_corpus
    from .build import BuildConfig, build
    from .manifest import format_table
    from .shards import atomic_write_bytes
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
    # full: two mixes of 750 steps (~0.3 s a step on 2 cores with the 3.2 s window) keep the
    # whole demo within 10 minutes; the tiny model has then learnt the sample's Swedish but
    # barely to listen (README)
    steps = 60 if quick else 750
    recipe = out / "demo.yaml"
    atomic_write_bytes(recipe, RECIPE.format(
        seed=seed, steps=steps, warmup=max(steps // 15, 5), log_every=10 if quick else 50,
        save_every=steps // 2, max_samples=16 if quick else "null").encode())
    echo(f"\n== 3/3 ablate {recipe} ({'quick: ' if quick else ''}{steps} steps per mix)")
    return run_recipe(recipe, out / "runs", corpus=corpus, echo=echo)
