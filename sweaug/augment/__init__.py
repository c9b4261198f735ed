"""Deterministic, replayable audio augmentation (audiomentations under a seed discipline).

* ``recipe.py``  — a YAML chain of transforms, validated before any audio is touched.
* ``augmenter.py`` — ``Augmenter(recipe, seed)(audio, sr, key, epoch)``: each sample's
  randomness depends only on (seed, key, epoch/copy); returns the audio and what was applied.
* ``sounds.py``  — noise / impulse-response folders, resampled to 16 kHz mono once and cached.
* ``offline.py`` — ``sweaug augment``: N augmented copies of every sample into new shards.
"""
from .augmenter import AugmentError, Augmenter
from .recipe import Recipe, RecipeError, load_recipe

__all__ = ["AugmentError", "Augmenter", "Recipe", "RecipeError", "load_recipe"]
