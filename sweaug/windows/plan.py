"""Packing utterances into windows: the pure part of ``sweaug windows`` (no audio here).

A job's utterances (one input shard, in shard order) are packed window by window from one
generator seeded by (seed, split, shard index): every draw — the lead silence, each gap, same
speaker or not, timestamps or not, prompt or not, where the no-speech windows go — is made here
and recorded in the :class:`Window`, so assembling the audio (stage.py) is a pure function of the
plan.

A window starts with the first unused utterance; each next one is, with probability
``speaker_continuity``, the next unused utterance of the same speaker, else the next unused one
of another speaker (either kind falls back to the other when none is left). The same original
utterance (an augmented folder holds copies) never appears twice in a window. Utterances are
placed on the 0.02 s timestamp grid after a gap drawn from ``gaps``. When the next one does not
fit, a timestamped window takes Whisper's rule for a segment that straddles the window end
(Radford et al. 2022, §2.3): the window audio runs to ``seconds`` with the start of that
utterance in it, and the target gives only its start timestamp; the utterance then opens the
next window, in full. A ``<|notimestamps|>`` window cannot say where a segment starts, so it ends
after its last complete utterance instead.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..records import ConfigError

STEP = 0.02  # Whisper's timestamp resolution (s)
MAX_SECONDS = 30.0  # Whisper's window (timestamps go up to <|30.00|>)
MIN_STRADDLE = 0.1  # the least of a straddling utterance worth keeping in the window (s)
SPLIT_IDS = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class Settings:
    seconds: float = MAX_SECONDS
    speaker_continuity: float = 0.5
    gap_min: float = 0.1
    gap_max: float = 0.6
    timestamp_fraction: float = 0.5
    prompt_fraction: float = 0.5
    no_speech_fraction: float = 0.0

    def __post_init__(self):
        if not 1.0 <= self.seconds <= MAX_SECONDS:
            raise ConfigError(f"--seconds must be between 1 and {MAX_SECONDS:g} (Whisper's window),"
                              f" got {self.seconds:g}")
        for name in ("speaker_continuity", "timestamp_fraction", "prompt_fraction"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"--{name.replace('_', '-')} must be between 0 and 1, got {v:g}")
        if not 0.0 <= self.no_speech_fraction < 1.0:
            raise ConfigError(f"--no-speech-fraction must be at least 0 and below 1, got "
                              f"{self.no_speech_fraction:g}")
        if not 0.0 <= self.gap_min <= self.gap_max or self.gap_max >= self.seconds / 2:
            raise ConfigError(f"--gap {self.gap_min:g},{self.gap_max:g}: need 0 <= MIN <= MAX < "
                              f"half the window ({self.seconds / 2:g} s)")

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "speaker_continuity": self.speaker_continuity,
                "gap": [self.gap_min, self.gap_max], "timestamp_fraction": self.timestamp_fraction,
                "prompt_fraction": self.prompt_fraction,
                "no_speech_fraction": self.no_speech_fraction}


@dataclass(frozen=True)
class Utt:
    """What planning needs of one (trimmed) utterance."""

    index: int  # position in the job's input order
    key: str
    original: str  # the utterance it is a copy of (augmented folders), else its key
    speaker: str
    samples: int  # after trimming, at 16 kHz
    text: str


@dataclass(frozen=True)
class Placed:
    utt: int  # Utt.index
    start: int  # sample offset in the window (a multiple of 320: the 0.02 s grid)
    straddles: bool = False


@dataclass
class Window:
    placed: list[Placed] = field(default_factory=list)
    samples: int = 0  # the window's audio length
    timestamps: bool = False
    prompt: bool = False
    prev_text: str = ""
    no_speech: dict | None = None  # for a no-speech window: what nospeech.py draws from
    same_speaker: int = 0  # transitions to the same speaker
    transitions: int = 0


def q(seconds: float) -> int:
    """Seconds -> samples on the 0.02 s grid (a multiple of 320)."""
    return int(round(seconds / STEP)) * 320


def _grid_up(samples: int) -> int:
    return -(-samples // 320) * 320


def stamp(samples: int) -> float:
    """A sample offset -> the nearest timestamp (s)."""
    return round(round(samples / 320) * STEP, 2)


def plan_windows(utts: list[Utt], settings: Settings, rng: np.random.Generator,
                 no_speech_sources: int = 0) -> list[Window]:
    """The windows of one job, in output order. ``utts`` must each fit a window (the stage
    drops longer ones, counted); ``no_speech_sources`` > 0 lets no-speech windows be added
    (their share ``settings.no_speech_fraction`` of all windows)."""
    sr, limit = 16000, q(settings.seconds)
    if any(u.samples > limit for u in utts):
        raise ValueError("an utterance longer than the window reached the planner")
    order = [u.index for u in utts]
    by_index = {u.index: u for u in utts}
    used: set[int] = set()
    windows: list[Window] = []
    first_next: int | None = None
    prev_text = ""
    cursor = 0  # the first possibly unused position of ``order``

    def next_unused(pred) -> int | None:
        for i in order[cursor:]:
            if i not in used and pred(by_index[i]):
                return i
        return None

    while True:
        while cursor < len(order) and order[cursor] in used:
            cursor += 1
        if first_next is None and cursor >= len(order):
            break
        w = Window(timestamps=bool(rng.random() < settings.timestamp_fraction),
                   prompt=bool(rng.random() < settings.prompt_fraction))
        w.prev_text = prev_text if w.prompt else ""
        t = q(rng.uniform(0.0, settings.gap_max))
        first = first_next if first_next is not None else order[cursor]
        first_next = None
        w.placed.append(Placed(first, t))
        used.add(first)
        t = _grid_up(t + by_index[first].samples)
        originals = {by_index[first].original}
        while True:
            last = by_index[w.placed[-1].utt]
            same = bool(rng.random() < settings.speaker_continuity)
            free = lambda u: u.original not in originals  # noqa: E731
            picks = (lambda u: free(u) and u.speaker == last.speaker,
                     lambda u: free(u) and u.speaker != last.speaker)
            cand = next_unused(picks[0 if same else 1])
            if cand is None:
                cand = next_unused(picks[1 if same else 0])
            if cand is None:
                break
            gap = q(rng.uniform(settings.gap_min, settings.gap_max))
            take = cand
            if t + gap + by_index[cand].samples > limit:
                # a <|notimestamps|> window fills the rest with a later utterance that fits
                take = None if w.timestamps else next_unused(
                    lambda u: free(u) and t + gap + u.samples <= limit)
            if take is not None:
                u = by_index[take]
                w.transitions += 1
                w.same_speaker += u.speaker == last.speaker
                w.placed.append(Placed(take, t + gap))
                used.add(take)
                originals.add(u.original)
                t = _grid_up(t + gap + u.samples)
                continue
            if w.timestamps and t + gap + int(MIN_STRADDLE * sr) <= limit:
                w.placed.append(Placed(cand, t + gap, straddles=True))
                first_next = cand  # opens the next window, in full
            break
        if w.placed[-1].straddles:
            w.samples = limit
        else:
            w.samples = min(limit, t + q(rng.uniform(settings.gap_min, settings.gap_max)))
        prev_text = " ".join(by_index[p.utt].text for p in w.placed if not p.straddles)
        windows.append(w)
    f = settings.no_speech_fraction
    if no_speech_sources and f > 0 and windows:
        k = int(np.floor(len(windows) * f / (1 - f) + rng.random()))
        for _ in range(k):
            at = int(rng.integers(len(windows) + 1))
            kind = "silence" if rng.random() < 0.2 else "noise"
            length = q(rng.uniform(settings.seconds / 2, settings.seconds))
            windows.insert(at, Window(samples=length, timestamps=bool(
                rng.random() < settings.timestamp_fraction), no_speech={
                "kind": kind, "source": int(rng.integers(no_speech_sources)),
                "offset": float(rng.random()),
                "level_dbfs": round(float(rng.uniform(-70, -60) if kind == "silence"
                                          else rng.uniform(-45, -15)), 2),
                "seed": int(rng.integers(2**31))}))
    return windows


def segments(w: Window, utts: dict[int, Utt]) -> list[dict]:
    """The window's segments: ``{key, start, end, text, speaker}`` (seconds on the 0.02 s grid,
    monotonic, inside the audio); a straddling one has ``"straddles": true`` and ends with the
    window."""
    out = []
    for p in w.placed:
        u = utts[p.utt]
        end = min(p.start + u.samples, w.samples)
        seg = {"key": u.key, "start": stamp(p.start), "end": stamp(end), "text": u.text,
               "speaker": u.speaker}
        if p.straddles:
            seg["straddles"] = True
        out.append(seg)
    return out


def target(segs: list[dict], timestamps: bool) -> str:
    """The training target as text: Whisper's timestamped form
    ``<|0.00|> Hej.<|1.20|><|1.60|> Nästa.<|3.40|><|27.80|>`` (a straddling segment: its start
    only), or the complete segments' text for a ``<|notimestamps|>`` window."""
    if not timestamps:
        return " ".join(s["text"] for s in segs if not s.get("straddles"))
    parts = []
    for s in segs:
        parts.append(f"<|{s['start']:.2f}|>" if s.get("straddles") else
                     f"<|{s['start']:.2f}|> {s['text']}<|{s['end']:.2f}|>")
    return "".join(parts)
