"""Noise and impulse-response folders (MUSAN, own recordings, the bundled sample), converted
once to 16 kHz mono float WAV in a cache, so that transforms never resample per call."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path


log = logging.getLogger("sweaug.augment")


class SoundsError(ValueError):
    """A noise/impulse-response folder that cannot be used; the message names the file. The
    augmenter raises it on as the recipe's RecipeError."""


AUDIO_EXTENSIONS = {".wav", ".flac", ".mp3", ".ogg", ".opus", ".aiff", ".aif", ".m4a"}


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder`` (recursively, sorted; hidden files ignored)."""
    return sorted(p for p in Path(folder).rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def prepare(folder: str | Path, cache_root: Path, sample_rate: int = 16000) -> Path:
    """A cached copy of ``folder``'s audio as mono ``sample_rate`` float32 WAV; returns its path.

    The cache key covers every file's path, size and mtime: edit the folder and it is redone.
    Raises SoundsError naming the file that cannot be decoded.
    """
    import numpy as np
    import soundfile as sf
    import soxr

    folder = Path(folder)
    files = audio_files(folder)
    if not files:
        raise SoundsError(f"{folder} holds no audio files")
    h = hashlib.sha256(f"{folder.resolve()}|{sample_rate}".encode())
    for f in files:
        st = f.stat()
        h.update(f"{f.relative_to(folder)}|{st.st_size}|{st.st_mtime_ns}".encode())
    dest = Path(cache_root) / "sounds" / h.hexdigest()[:20]
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    converted, names = 0, set()
    for i, f in enumerate(files):
        try:
            x, sr = sf.read(f, dtype="float32", always_2d=True)
        except Exception as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise SoundsError(f"noise/impulse-response file {f} cannot be decoded: {e}") from None
        if x.shape[0] == 0 or not np.isfinite(x).all():
            shutil.rmtree(tmp, ignore_errors=True)
            raise SoundsError(f"noise/impulse-response file {f} is empty or has NaN/inf samples")
        mono = x.mean(axis=1, dtype=np.float32)
        if sr != sample_rate:
            mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32)
        converted += sr != sample_rate or x.shape[1] != 1
        name = str(f.relative_to(folder).with_suffix("")).replace(os.sep, "__")
        name = name if name not in names else f"{name}__{i}"  # a.wav and a.flac
        names.add(name)
        out = tmp / f"{name}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        sf.write(out, mono, sample_rate, subtype="FLOAT")
    if converted:
        log.info("%s: %d of %d files resampled/downmixed to %d Hz mono (cached in %s)",
                 folder, converted, len(files), sample_rate, dest)
    try:
        os.replace(tmp, dest)
    except OSError:  # another process prepared it meanwhile
        shutil.rmtree(tmp, ignore_errors=True)
    return dest
