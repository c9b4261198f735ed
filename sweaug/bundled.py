"""The recipes that ship inside the package (``sweaug/recipes/<kind>/<name>.yaml``), addressable
by name from anywhere: ``sweaug augment --recipe default``, ``sweaug ablate seed-table``, and
listed by ``sweaug recipes``. A name that is an existing file is that file; a bare name (no
folder, no ``.yaml``) is looked up among the bundled recipes of its kind."""
from __future__ import annotations

from pathlib import Path

from .records import ConfigError

ROOT = Path(__file__).resolve().parent / "recipes"
KINDS = ("augment", "ablation")


def bundled(kind: str) -> dict[str, Path]:
    """``{name: path}`` of the bundled recipes of ``kind``, sorted by name."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return {p.stem: p for p in sorted((ROOT / kind).glob("*.yaml"))}


def resolve(recipe: str | Path, kind: str) -> Path:
    """The file ``recipe`` names: itself when it exists; else, for a bare name, the bundled
    recipe of that name. Anything else is a :class:`ConfigError` that lists the names."""
    p = Path(recipe)
    if p.exists():
        return p
    known = bundled(kind)
    bare = p.name == str(recipe) and p.suffix not in (".yaml", ".yml")
    if bare and str(recipe) in known:
        return known[str(recipe)]
    names = ", ".join(known) or "none"
    what = "no such file" if not bare else "no such file, nor a bundled recipe of that name"
    raise ConfigError(f"{kind} recipe {recipe}: {what} (bundled {kind} recipes: {names}; "
                      f"`sweaug recipes` lists them)")


def description(path: Path) -> str:
    """The recipe's top-level ``description:`` (read as YAML), or ''."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return ""
    return str(data.get("description", "")) if isinstance(data, dict) else ""
