"""The seeded augmenter: the same (recipe, seed, key, epoch) always gives the same audio.

audiomentations takes no seed (audiomentations#288) and some transforms draw inside ``apply``,
so recorded parameters alone do not pin the output. Here every call seeds Python's ``random``
and NumPy's global generator from sha256(seed, key, epoch) — the only generators
audiomentations 0.43 uses — runs the chain, and restores whatever state was there before: the
result depends on nothing else (not on other samples, workers, or the caller's own use of
``random``), and a recorded entry replays exactly.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path

import numpy as np

from .recipe import PATH_PARAMS, Recipe, RecipeError, _transform_class

CLIP_TOLERANCE = 0.001  # share of samples allowed beyond full scale (they are hard-limited)


class AugmentError(Exception):
    """One sample could not be augmented; ``reason`` is a named drop reason."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


def derive_seed(seed: int, key: str, epoch: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{seed}\x1f{key}\x1f{epoch}".encode()).digest()[:8],
                          "little")


def _jsonable(v):
    if isinstance(v, (np.floating, float)):
        return round(float(v), 6)
    if isinstance(v, (np.integer, int, bool, np.bool_)):
        return v.item() if hasattr(v, "item") else v
    if isinstance(v, (str, Path)):
        return Path(v).name if isinstance(v, Path) or "/" in str(v) else v
    if isinstance(v, np.ndarray):
        return None  # arrays (e.g. a loaded noise clip) are not parameters
    return str(v)


class Augmenter:
    """``Augmenter(recipe, seed)(samples, sample_rate, key, epoch) -> (samples, applied)``.

    ``applied`` lists every transform that fired, in order, as ``{"name", "parameters"}``
    (parameters as a canonical JSON string, so every sample has the same schema); it is empty
    when nothing fired. Raises :class:`AugmentError` for NaN/inf output (``augment_nan``),
    output beyond full scale on more than 0.1 % of samples (``augment_clipping``), an empty
    result or a transform failing on this clip (``augment_failed``).
    """

    def __init__(self, recipe: Recipe, seed: int, cache_dir: Path | None = None,
                 sample_rate: int = 16000):
        import os

        from .sounds import SoundsError, prepare

        self.recipe, self.seed, self.sample_rate = recipe, int(seed), sample_rate
        cache = Path(cache_dir or os.environ.get("SWEAUG_CACHE", Path.home() / ".cache" / "sweaug"))
        self.transforms = []
        for step in recipe.steps:
            params = dict(step.params)
            for key in PATH_PARAMS:
                if key in params:
                    try:
                        params[key] = str(prepare(params[key], cache, sample_rate))
                    except SoundsError as e:
                        raise RecipeError(f"{recipe.path}:{step.line}: {step.name}: {key}: {e}"
                                          ) from None
            self.transforms.append((step.name, _transform_class(step.name)(**params)))

    def __call__(self, samples: np.ndarray, sample_rate: int, key: str, epoch: int = 0
                 ) -> tuple[np.ndarray, list[dict]]:
        if sample_rate != self.sample_rate:
            raise AugmentError("augment_failed", f"expected {self.sample_rate} Hz, got {sample_rate}")
        x = np.ascontiguousarray(samples, dtype=np.float32)
        state_py, state_np = random.getstate(), np.random.get_state()
        s = derive_seed(self.seed, key, epoch)
        random.seed(s)
        np.random.seed(s % (2**32))
        applied = []
        try:
            for name, t in self.transforms:
                try:
                    x = t(x, sample_rate)
                except Exception as e:
                    raise AugmentError("augment_failed", f"{name}: {type(e).__name__}: {e}") from None
                if t.parameters.get("should_apply"):
                    params = {k: _jsonable(v) for k, v in sorted(t.parameters.items())
                              if k != "should_apply"}
                    applied.append({"name": name, "parameters": json.dumps(
                        {k: v for k, v in params.items() if v is not None}, sort_keys=True)})
        finally:
            random.setstate(state_py)
            np.random.set_state(state_np)
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 1 or x.size == 0:
            raise AugmentError("augment_failed", f"output shape {x.shape}")
        if not np.isfinite(x).all():
            raise AugmentError("augment_nan", ", ".join(a["name"] for a in applied))
        over = np.count_nonzero(np.abs(x) > 1.0)
        if over > CLIP_TOLERANCE * x.size:
            raise AugmentError("augment_clipping", f"{over / x.size:.2%} of samples beyond full "
                                                   f"scale after {', '.join(a['name'] for a in applied)}")
        return np.clip(x, -1.0, 1.0), applied
