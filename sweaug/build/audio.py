"""Audio normalization: decode any rate/channel count, downmix, resample to 16 kHz with soxr,
check quality, encode 16-bit FLAC.

Decoding and encoding go through soundfile (its wheel bundles libsndfile with FLAC, WAV,
OGG/Vorbis/Opus and MP3), resampling through soxr: the same codec path as the bare
decode -> resample -> encode loop, with no per-file process start-up.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np

TARGET_SR = 16_000
SILENCE_DBFS = -60.0  # RMS below this is "all silence"
CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
TRUNCATION_TOLERANCE = 0.9  # decoded/expected length below this is a truncated clip
# The largest archive member read as one clip (a tar bomb - a huge member in a small
# compressed archive - is refused from its header, unread). Evaluation splits keep clips of any
# length, so the bound is not the training filter's max_duration but the longer of it and
# MEMBER_SECONDS, at the bytes per second of uncompressed 96 kHz stereo 32-bit WAV, twice over:
# 2 x 120 s x 768 kB/s = 184 MB by default, while a 30 s 16 kHz mono clip is ~1 MB.
MEMBER_SECONDS = 120.0
MAX_BYTES_PER_SECOND = 96_000 * 2 * 4
MEMBER_MARGIN = 2


def max_member_bytes(max_duration: float) -> int:
    """The byte bound for one archive member (see MEMBER_SECONDS)."""
    return int(MEMBER_MARGIN * max(max_duration, MEMBER_SECONDS) * MAX_BYTES_PER_SECOND)


class AudioError(Exception):
    """An unusable clip; ``reason`` is one of the named drop reasons."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Clip:
    """A normalized clip: 16 kHz mono 16-bit FLAC bytes plus what was measured on the way."""

    flac: bytes
    num_samples: int
    source_sample_rate: int
    source_channels: int
    rms_dbfs: float
    clip_fraction: float

    @property
    def duration(self) -> float:
        return self.num_samples / TARGET_SR


def decode(data: bytes | str, expected_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode ``data`` (bytes, or a file path: decoding from a path saves libsndfile's
    per-block callbacks into Python) to float32 ``(frames, channels)`` and its sample rate.

    Raises AudioError(empty_audio | corrupt_audio | truncated_audio). A clip counts as
    truncated when it decodes to less than 90 % of the length its own header announces,
    or of ``expected_seconds`` (the source's metadata) when that is given.
    """
    import soundfile as sf

    if isinstance(data, str):
        with open(data, "rb") as fh:
            head = fh.read(1 << 16)
            size = fh.seek(0, 2)
    else:
        head, size = data, len(data)
    if not size:
        raise AudioError("empty_audio", "0 bytes")
    try:
        with sf.SoundFile(data if isinstance(data, str) else io.BytesIO(data)) as f:
            sr = f.samplerate
            announced = f.frames
            x = f.read(dtype="float32", always_2d=True)
    except Exception as e:  # libsndfile raises several types for undecodable bytes
        msg = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the clip", str(e))
        raise AudioError("corrupt_audio", f"{type(e).__name__}: {msg}".splitlines()[0][:200])
    if x.shape[0] == 0:
        raise AudioError("empty_audio", "no samples")
    declared = _wav_declared_bytes(head, size)
    if declared is not None and declared[1] < TRUNCATION_TOLERANCE * declared[0]:
        raise AudioError("truncated_audio", f"WAV data chunk has {declared[1]} of "
                                            f"{declared[0]} announced bytes")
    if 0 < announced < 2**62 and x.shape[0] < TRUNCATION_TOLERANCE * announced:
        raise AudioError("truncated_audio", f"decoded {x.shape[0]} of {announced} frames")
    if expected_seconds and x.shape[0] / sr < TRUNCATION_TOLERANCE * expected_seconds - 0.05:
        raise AudioError("truncated_audio",
                         f"decoded {x.shape[0] / sr:.2f} s of {expected_seconds:.2f} s")
    return x, sr


def _wav_declared_bytes(data: bytes, size: int) -> tuple[int, int] | None:
    """(announced, present) bytes of a RIFF/WAVE data chunk; None if not a plain WAV.
    ``data`` is the file's start, ``size`` its whole length.

    libsndfile silently shortens a WAV whose data chunk is cut off, so the check is ours.
    """
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos = 12
    while pos + 8 <= len(data):
        cid, field = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "little")
        if cid == b"data":
            if field in (0, 0xFFFFFFFF):  # streamed WAVs leave the size open
                return None
            return field, size - pos - 8
        pos += 8 + field + (field & 1)
    return None


def to_mono_16k(x: np.ndarray, sr: int) -> np.ndarray:
    """Downmix ``(frames, channels)`` float32 to mono and resample to 16 kHz (soxr HQ)."""
    import soxr

    mono = x[:, 0] if x.shape[1] == 1 else x.mean(axis=1, dtype=np.float32)
    if sr != TARGET_SR:
        mono = soxr.resample(mono, sr, TARGET_SR, quality="HQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def encode_flac(mono16k: np.ndarray) -> bytes:
    """16-bit FLAC bytes of a float mono 16 kHz signal (clipped to [-1, 1])."""
    return encode_pcm16(np.clip(np.rint(mono16k * 32767.0), -32768, 32767).astype(np.int16))


def encode_pcm16(pcm: np.ndarray) -> bytes:
    """FLAC bytes of 16 kHz mono int16 samples, unchanged (a lossless round trip)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, pcm, TARGET_SR, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def process(data: bytes | str, expected_seconds: float | None = None) -> Clip:
    """Bytes (or a file path) of any supported format -> a checked, normalized :class:`Clip`.

    Raises AudioError for NaN/inf samples (``nan_audio``) and all-silence
    (``silence``) besides the decode errors; clipping is measured, not judged here (it is
    a training filter: evaluation splits keep clipped clips).
    """
    x, sr = decode(data, expected_seconds)
    if not np.isfinite(x).all():
        raise AudioError("nan_audio", f"{int((~np.isfinite(x)).sum())} non-finite samples")
    clip_fraction = float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / x.size
    mono = to_mono_16k(x, sr)
    rms = float(np.sqrt(np.mean(np.square(mono, dtype=np.float64)))) if mono.size else 0.0
    rms_dbfs = 20.0 * np.log10(rms) if rms > 0 else -200.0
    if rms_dbfs < SILENCE_DBFS:
        raise AudioError("silence", f"RMS {rms_dbfs:.1f} dBFS")
    return Clip(flac=encode_flac(mono), num_samples=int(mono.size), source_sample_rate=int(sr),
                source_channels=int(x.shape[1]), rms_dbfs=round(rms_dbfs, 2),
                clip_fraction=round(clip_fraction, 6))
