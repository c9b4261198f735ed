"""Augmentation recipes: ``recipes/augment/*.yaml``.

```yaml
name: default
description: ...
transforms:
  - Gain: {p: 0.5, min_gain_db: -12, max_gain_db: 6}
  - AddBackgroundNoise: {p: 0.5, sounds_path: ${noise_dir}, min_snr_db: 5, max_snr_db: 20}
```
Every list item is one audiomentations transform with its keyword arguments (``p`` included).
``${noise_dir}`` / ``${rir_dir}`` are filled from the CLI (``--noise-dir``/``--rir-dir``, relative
to the current directory as flags are; default: the bundled sample's noise and impulse
responses), ``${sample}`` is the bundled sample folder; paths written in the recipe are relative
to the recipe file. Validation happens on load, before any audio is touched: YAML that is not
plain data (a ``!!python/...`` tag), an unknown transform, a parameter it does not take, an
inverted or impossible range, a missing or empty noise/RIR folder — each a :class:`RecipeError`
naming the recipe file and line.
"""
from __future__ import annotations

import hashlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path

SAMPLE_DIR = Path(__file__).resolve().parents[1] / "sample"
PATH_PARAMS = ("sounds_path", "ir_path")  # folder parameters, prepared by sounds.py
# transforms that do not keep a 16 kHz mono float waveform a waveform, or need another input
UNSUPPORTED = {"Lambda", "RoomSimulator", "Resample"}


class RecipeError(ValueError):
    """A recipe problem; the message names the file and line."""


@dataclass(frozen=True)
class Step:
    name: str
    params: dict
    line: int


@dataclass(frozen=True)
class Recipe:
    name: str
    path: str
    sha256: str  # of the recipe file's bytes
    steps: tuple[Step, ...]
    description: str = ""
    variables: dict = field(default_factory=dict, hash=False, compare=False)


def _transform_class(name: str):
    import audiomentations

    cls = getattr(audiomentations, name, None)
    if not inspect.isclass(cls) or name in UNSUPPORTED or not hasattr(cls, "apply"):
        return None
    return cls


def _check_ranges(where: str, name: str, params: dict) -> None:
    p = params.get("p", 0.5)
    if not isinstance(p, (int, float)) or not 0 <= p <= 1:
        raise RecipeError(f"{where}: {name}: p must be a number within 0..1, got {p!r}")
    for key, lo in params.items():
        if key.startswith("min_"):
            hi_key = "max_" + key[4:]
            hi = params.get(hi_key)
            if isinstance(lo, (int, float)) and isinstance(hi, (int, float)) and lo > hi:
                raise RecipeError(f"{where}: {name}: {key}={lo} > {hi_key}={hi} (inverted range)")
    for key in ("min_rate", "max_rate", "min_bitrate", "max_bitrate", "min_center_freq",
                "max_center_freq", "min_cutoff_freq", "max_cutoff_freq"):
        v = params.get(key)
        if isinstance(v, (int, float)) and v <= 0:
            raise RecipeError(f"{where}: {name}: {key} must be positive, got {v}")
    for key in ("min_cutoff_freq", "max_cutoff_freq", "min_center_freq", "max_center_freq"):
        v = params.get(key)
        if isinstance(v, (int, float)) and v >= 8000:
            raise RecipeError(f"{where}: {name}: {key}={v} Hz is at or above the Nyquist "
                              f"frequency of 16 kHz audio (8000 Hz)")


def _resolve(value, base: Path, variables: dict, where: str, key: str) -> str:
    text = str(value)
    for var, target in variables.items():
        text = text.replace("${" + var + "}", str(target))
    if "${" in text:
        raise RecipeError(f"{where}: {key}: unknown variable in {value!r} "
                          f"(known: {', '.join('${%s}' % v for v in variables)})")
    path = Path(text).expanduser()
    path = path if path.is_absolute() else (base / path)
    if not path.is_dir():
        raise RecipeError(f"{where}: {key}: folder {path} does not exist")
    from .sounds import audio_files
    if not audio_files(path):
        raise RecipeError(f"{where}: {key}: folder {path} holds no audio files")
    return str(path.resolve())


def load_recipe(path: str | Path, noise_dir: str | Path | None = None,
                rir_dir: str | Path | None = None) -> Recipe:
    """Load and validate a recipe (no audio is read, transforms are constructed once)."""
    import yaml

    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise RecipeError(f"cannot read recipe {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    try:
        root = yaml.compose(text)  # the nodes, for line numbers
        data = yaml.safe_load(text)  # plain data only: an unknown tag stops here, at its line
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        what = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None))
                        if x) or str(e)
        if isinstance(e, yaml.constructor.ConstructorError):
            what += " (a recipe is plain YAML data: no !!python/... or other custom tags)"
        raise RecipeError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML: {what}"
                          ) from None
    if not isinstance(root, yaml.MappingNode):
        raise RecipeError(f"{path}:1: a recipe is a mapping with name and transforms")
    top = {k.value: v for k, v in root.value}
    unknown = set(top) - {"name", "description", "transforms"}
    if unknown:
        node = next(v for k, v in root.value if k.value in unknown)
        raise RecipeError(f"{path}:{node.start_mark.line + 1}: unknown key(s) "
                          f"{', '.join(sorted(unknown))} (allowed: name, description, transforms)")
    steps_node = top.get("transforms")
    if not isinstance(steps_node, yaml.SequenceNode) or not steps_node.value:
        line = (steps_node.start_mark.line + 1) if steps_node is not None else 1
        raise RecipeError(f"{path}:{line}: `transforms` must be a non-empty list")
    def flag(value, default: Path) -> Path:  # a flag is relative to the cwd, not to the recipe
        return Path(value).expanduser().resolve() if value else default

    variables = {"sample": SAMPLE_DIR, "noise_dir": flag(noise_dir, SAMPLE_DIR / "noise"),
                 "rir_dir": flag(rir_dir, SAMPLE_DIR / "rir")}
    steps = []
    for i, item in enumerate(steps_node.value):
        line = item.start_mark.line + 1
        where = f"{path}:{line}"
        if not isinstance(item, yaml.MappingNode) or len(item.value) != 1:
            raise RecipeError(f"{where}: each transform is one `Name: {{params}}` mapping")
        name_node, params_node = item.value[0]
        name = name_node.value
        cls = _transform_class(name)
        if cls is None:
            raise RecipeError(f"{where}: unknown or unsupported transform {name!r} "
                              f"(an audiomentations waveform transform, e.g. Gain, PitchShift)")
        params = data["transforms"][i][name]
        params = {} if params is None else params
        if not isinstance(params, dict):
            raise RecipeError(f"{where}: {name}: parameters must be a mapping")
        accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
        bad = sorted(set(params) - accepted)
        if bad:
            raise RecipeError(f"{where}: {name} takes no parameter {', '.join(bad)} "
                              f"(it takes: {', '.join(sorted(accepted))})")
        _check_ranges(where, name, params)
        for key in PATH_PARAMS:
            if key in params:
                params[key] = _resolve(params[key], path.parent, variables, where, key)
        try:
            cls(**params)  # audiomentations' own validation, before any audio
        except Exception as e:
            raise RecipeError(f"{where}: {name}: {e}") from None
        steps.append(Step(name, params, line))
    for key in ("name", "description"):
        if isinstance(data.get(key), (list, dict)):
            raise RecipeError(f"{path}:{top[key].start_mark.line + 1}: `{key}` must be text")
    name = str(data["name"]) if data.get("name") is not None else path.stem
    desc = str(data["description"]) if data.get("description") is not None else ""
    return Recipe(name, str(path), hashlib.sha256(raw).hexdigest(), tuple(steps), desc,
                  {k: str(v) for k, v in variables.items()})
