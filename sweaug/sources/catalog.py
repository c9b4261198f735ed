"""The declarative source manifests (``manifests/<source>.yaml``): origin, licence, citation,
pinned revision, known releases and their expected split counts."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

MANIFEST_DIR = Path(__file__).parents[1] / "manifests"


@lru_cache(maxsize=None)
def load(source: str) -> dict:
    import yaml

    path = MANIFEST_DIR / f"{source}.yaml"
    if not path.exists():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
