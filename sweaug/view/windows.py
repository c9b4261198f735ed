"""The page of a ``sweaug windows`` folder: per split, the counts of its manifest and a seeded
draw of windows, each with its waveform (segment spans shaded and labelled, a straddling one
open at the window end), its audio, its segments, its training target and its prompt."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from .plots import figure_uri


def waveform(audio: np.ndarray, segments: list[dict], title: str) -> str:
    """PNG data URI: the waveform (min/max per pixel column) with the segments' spans."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 1.9), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    n = max(len(audio), 1)
    cols = min(1000, n)
    edges = np.linspace(0, n, cols + 1).astype(int)
    chunks = [audio[a:b] if b > a else audio[a:a + 1] for a, b in zip(edges[:-1], edges[1:])]
    t = edges[:-1] / 16000
    ax.fill_between(t, [c.min() if c.size else 0 for c in chunks],
                    [c.max() if c.size else 0 for c in chunks], color="#1d232b", linewidth=0)
    for i, s in enumerate(segments):
        color = "#d6336c" if s.get("straddles") else ("#1f6feb", "#2f9e44")[i % 2]
        ax.axvspan(s["start"], s["end"], color=color, alpha=0.18)
        ax.axvline(s["start"], color=color, linewidth=1)
        label = s["text"] if len(s["text"]) <= 28 else s["text"][:26] + "…"
        ax.text(s["start"] + 0.02, 0.86, ("▶ " if s.get("straddles") else "") + label, fontsize=7,
                color=color, transform=ax.get_xaxis_transform(), clip_on=True)
    ax.set_xlim(0, n / 16000)
    ax.set_ylim(-1, 1)
    ax.set_yticks([])
    ax.set_xlabel("s")
    ax.set_title(title, fontsize=9, loc="left")
    fig.tight_layout()
    return figure_uri(fig)


def windows_page(folder: Path, samples: int, seed: int, sink) -> dict:
    import soundfile as sf

    from ..build.shards import iter_samples

    folder = Path(folder)
    m = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    (name, src), = m["sources"].items()
    splits = []
    for split, s in src["splits"].items():
        items = []
        for sh in s["shards"]:
            for key, files in iter_samples(folder / sh["path"], only=("json",)):
                items.append((sh["path"], key))
        rng = np.random.default_rng([seed, len(splits)])
        pick = sorted(rng.choice(len(items), min(samples, len(items)), replace=False).tolist()) \
            if items else []
        wanted = {items[i] for i in pick}
        rows = []
        for path in dict.fromkeys(p for p, _ in wanted):
            for key, files in iter_samples(folder / path):
                if (path, key) not in wanted:
                    continue
                meta = json.loads(files["json"])
                x, _ = sf.read(io.BytesIO(files["flac"]), dtype="float32")
                title = (f"{key}: {meta['duration']:.2f} s, "
                         + ("no speech (" + meta["window"]["no_speech"]["kind"] + ")"
                            if meta["no_speech"] else
                            f"{len(meta['segments'])} segments, "
                            + ("timestamps" if meta["timestamps"] else "<|notimestamps|>")))
                rows.append({"key": key, "meta": meta, "src": sink.src(key, files["flac"]),
                             "plot": waveform(x, meta["segments"], title)})
        stats = {k: s.get(k) for k in ("samples", "hours", "speech_hours", "speech_share",
                                       "utterances", "no_speech", "timestamped", "prompted",
                                       "straddling", "same_speaker_share", "drops")}
        splits.append({"split": split, "stats": stats, "rows": rows})
    return {"kind": "windows", "title": folder.name, "path": str(folder), "manifest": m,
            "settings": m.get("windows", {}), "input": m.get("input", {}), "splits": splits,
            "samples_per_split": samples, "seed": seed}
