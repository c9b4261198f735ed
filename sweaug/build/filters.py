"""Training-set filters. Each returns a named drop reason (or None).

Filters apply to training splits only: evaluation splits keep every usable clip, so that WER
stays comparable with published numbers. What is unusable everywhere (undecodable audio,
NaN, silence, empty text) is decided in audio.py / here with ``always=True`` reasons.
Unlabelled records (``Utterance.unlabelled``: audio with no transcript, to be labelled later)
have no text to judge: no text reason, no characters-per-second bound; the duration and
clipping bounds still apply.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from ..records import ConfigError, Utterance


@dataclass(frozen=True)
class FilterConfig:
    min_duration: float = 0.5  # seconds
    max_duration: float = 30.0  # seconds (Whisper's window)
    min_cps: float = 1.0  # characters (normalized text, no spaces) per second
    max_cps: float = 25.0
    max_clip_fraction: float = 0.01  # share of samples at full scale

    def __post_init__(self):
        if not 0 <= self.min_duration < self.max_duration:
            raise ConfigError(f"duration bounds {self.min_duration}..{self.max_duration} are inverted")
        if not 0 <= self.min_cps < self.max_cps:
            raise ConfigError(f"characters-per-second bounds {self.min_cps}..{self.max_cps} are inverted")
        if not 0 <= self.max_clip_fraction <= 1:
            raise ConfigError("max_clip_fraction must be within 0..1")

    def as_dict(self) -> dict:
        return asdict(self)


def text_reason(utt: Utterance, train: bool, rejected: str) -> tuple[str, str] | None:
    """Reasons decided from the transcript alone (before any audio is read)."""
    if utt.unlabelled:
        return None
    if not any(ch.isalnum() for ch in utt.target):
        return "empty_text", repr(utt.text[:80])
    if train and rejected:
        return "rejected_chars", rejected
    return None


def audio_reason(utt: Utterance, duration: float, clip_fraction: float, train: bool,
                 cfg: FilterConfig) -> tuple[str, str] | None:
    """Reasons decided once the clip is decoded (training splits only)."""
    if not train:
        return None
    if duration < cfg.min_duration:
        return "too_short", f"{duration:.2f} s < {cfg.min_duration} s"
    if duration > cfg.max_duration:
        return "too_long", f"{duration:.2f} s > {cfg.max_duration} s"
    if not utt.unlabelled:
        chars = sum(1 for ch in utt.normalized if not ch.isspace())
        cps = chars / duration
        if not cfg.min_cps <= cps <= cfg.max_cps:
            return "chars_per_second", f"{cps:.1f} chars/s outside {cfg.min_cps}..{cfg.max_cps}"
    if clip_fraction > cfg.max_clip_fraction:
        return "clipping", f"{clip_fraction:.1%} of samples at full scale"
    return None
