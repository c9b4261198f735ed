"""Histograms drawn with matplotlib (Agg, no pyplot state) into PNG data URIs; the same data
give the same bytes (fixed size, no Software tag, no dates)."""
from __future__ import annotations

import base64
import io

PNG_PREFIX = "data:image/png;base64,"


def png_uri(png: bytes) -> str:
    return PNG_PREFIX + base64.b64encode(png).decode("ascii")


def figure_uri(fig) -> str:
    """A matplotlib figure as a PNG data URI (no Software tag: the same data, the same bytes)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return png_uri(buf.getvalue())


def histograms(title: str, per_split: dict[str, tuple[list[float], list[float]]]) -> str | None:
    """One figure for a source: the duration (s) and characters-per-second histograms, one
    step line per split, on shared bins. ``per_split``: split -> (durations, cps)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if not any(d for d, _ in per_split.values()):
        return None
    fig = Figure(figsize=(10, 3.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, idx, label in ((axes[0], 0, "duration (s)"),
                           (axes[1], 1, "characters per second (normalized text)")):
        values = [v for pair in per_split.values() for v in pair[idx]]
        if not values:
            continue
        lo, hi = float(min(values)), float(max(values))
        if hi - lo < 1e-9:
            lo, hi = lo - 0.5, hi + 0.5
        bins = np.linspace(lo, hi, 31)
        for split, pair in per_split.items():
            if pair[idx]:
                ax.hist(pair[idx], bins=bins, histtype="step", linewidth=1.6,
                        label=f"{split} ({len(pair[idx])})")
        ax.set_xlabel(label)
        ax.set_ylabel("samples")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", loc="upper right")
    fig.suptitle(title)
    fig.tight_layout()
    return figure_uri(fig)
