"""An energy VAD for trimming a clip's leading and trailing silence (tight segment bounds).

Frames of 20 ms (one Whisper timestamp step); a frame is speech when its energy is within
``top_db`` of the loudest frame and ``floor_margin_db`` above the clip's noise floor (its 10th
percentile frame). The same idea as ``librosa.effects.trim`` (top_db), which would pull librosa
and its dependencies in for twenty lines of numpy; the noise-floor term keeps a noisy
recording's hiss from counting as speech.
"""
from __future__ import annotations

import numpy as np

FRAME = 320  # samples at 16 kHz: 20 ms
SILENT_DBFS = -60.0  # a clip whose loudest frame is below this holds no speech


def speech_bounds(x: np.ndarray, top_db: float = 35.0, floor_margin_db: float = 10.0,
                  pad: int = 3 * FRAME) -> tuple[int, int] | None:
    """``(first, end)`` sample of the speech in ``x`` (``x[first:end]``), widened by ``pad``
    samples on each side and kept inside the clip; None when the clip is silent."""
    n = len(x) // FRAME
    if n == 0:
        return None
    frames = np.asarray(x[: n * FRAME], dtype=np.float64).reshape(n, FRAME)
    db = 10 * np.log10(np.mean(frames * frames, axis=1) + 1e-12)
    peak = float(db.max())
    if peak < SILENT_DBFS:
        return None
    floor = float(np.percentile(db, 10))
    threshold = min(max(peak - top_db, floor + floor_margin_db), peak - 6.0)
    speech = np.flatnonzero(db >= threshold)
    first, end = int(speech[0]) * FRAME, (int(speech[-1]) + 1) * FRAME
    return max(0, first - pad), min(len(x), end + pad)
