"""Reading a corpus manifest and showing it as a table."""
from __future__ import annotations

import json
from pathlib import Path

from ..records import SourceError


def read_manifest(corpus: Path) -> dict:
    path = Path(corpus) / "manifest.json"
    if not path.exists():
        raise SourceError(f"{corpus} has no manifest.json: is it a `sweaug build` output folder?")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise SourceError(f"{path} is not valid JSON: {e}") from None


def unlabelled_message(folder) -> str:
    """Why a stage that trains or evaluates on transcripts refuses ``folder``: its manifest's
    source entry says ``unlabelled`` (a local folder built without a text column, local.py).
    One wording for every such stage (ablate, windows), raised before any work starts."""
    return (f"{folder} is unlabelled (built from a local folder without a text column): "
            f"label it first with `sweaug label {folder} --teacher MODEL --out DIR`")


def format_table(manifest: dict) -> str:
    """Per source and split: samples, hours, speakers, shards, drops by reason."""
    head = ["source", "split", "samples", "hours", "speakers", "shards", "dropped"]
    rows = []
    for name, src in manifest["sources"].items():
        for split, s in src["splits"].items():
            drops = ", ".join(f"{r} {n}" for r, n in s["drops"].items()) or "-"
            rows.append([name, split, str(s["samples"]), f"{s['hours']:.3f}", str(s["speakers"]),
                         str(len(s["shards"])), drops])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    total_h = sum(s["hours"] for src in manifest["sources"].values() for s in src["splits"].values())
    total_n = sum(s["samples"] for src in manifest["sources"].values()
                  for s in src["splits"].values())
    lines.append(f"\n{total_n} samples, {total_h:.3f} h; normalizer {manifest['normalizer_version']}"
                 f"; leakage drops {manifest['leakage']['count']} (see leakage.tsv)")
    for name, src in manifest["sources"].items():
        lines.append(f"{name}: release {src['release']}; licence {src['license'] or 'unknown'}")
    return "\n".join(lines)
