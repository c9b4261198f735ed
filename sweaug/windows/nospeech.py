"""No-speech audio for no-speech windows: noise files from a folder (the bundled noise sample by
default), looped from a drawn offset to a drawn length at a drawn level, or near-silence
(Gaussian noise at -70..-60 dBFS). Their target is the empty transcript (Whisper's no-speech
case). A folder with ``train/``, ``validation/``, ``test/`` sub-folders gives each split its own
files (no noise heard in training is in a test window); otherwise every split draws from all
files, and the manifest says so.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..records import SPLITS, ConfigError

AUDIO = (".flac", ".wav", ".ogg", ".mp3", ".opus")


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO and p.is_file())


def no_speech_files(folder: Path) -> tuple[dict[str, list[str]], bool]:
    """(split -> its files, whether the splits share them)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"--no-speech-dir {folder}: not a folder")
    per = {s: _files(folder / s) for s in SPLITS if (folder / s).is_dir()}
    if per:
        empty = [s for s in SPLITS if not per.get(s)]
        if empty:
            raise ConfigError(f"--no-speech-dir {folder} has split sub-folders but no audio "
                              f"files ({', '.join(AUDIO)}) for {', '.join(empty)}")
        return {s: [str(p) for p in fs] for s, fs in per.items()}, False
    files = _files(folder)
    if not files:
        raise ConfigError(f"--no-speech-dir {folder}: no audio files ({', '.join(AUDIO)})")
    return {s: [str(p) for p in files] for s in SPLITS}, True


def load(path: str) -> np.ndarray:
    """A no-speech file as 16 kHz mono float32 (a clear error naming it when unreadable)."""
    from ..build.audio import AudioError, decode, to_mono_16k

    try:
        x, sr = decode(path)
    except AudioError as e:
        raise ConfigError(f"no-speech file {path}: {e}") from None
    return to_mono_16k(x, sr)


def render(params: dict, samples: int, files: list[str], cache: dict) -> np.ndarray:
    """The audio of one no-speech window from the parameters plan.py drew."""
    level = 10 ** (params["level_dbfs"] / 20)
    if params["kind"] == "silence":
        rng = np.random.default_rng(params["seed"])
        return (rng.standard_normal(samples) * level).astype(np.float32)
    path = files[params["source"]]
    if path not in cache:
        cache[path] = load(path)
    x = cache[path]
    start = int(params["offset"] * len(x))
    y = np.resize(np.roll(x, -start), samples).astype(np.float64)  # looped
    rms = float(np.sqrt(np.mean(y * y)))
    return (y * (level / rms if rms > 0 else 0.0)).astype(np.float32)
