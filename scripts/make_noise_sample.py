#!/usr/bin/env python3
"""Generate the bundled background-noise and room-impulse-response sample.

    python scripts/make_noise_sample.py            # build + self-check
    python scripts/make_noise_sample.py --no-check # build only

Writes (16 kHz, mono, 16-bit FLAC; total well under 350 KB):

  sweaug/sample/noise/   white, pink, brown, babble, hum+fan noise (3-4 s each,
                         -20 dBFS RMS, stored on a 14-bit grid to keep FLAC small)
  sweaug/sample/rir/     four synthetic room impulse responses (0.2-0.75 s)
  sweaug/sample/{noise,rir}/README.md   one line per file: what it is, how made
  tests/fixtures/noise_bad/             bad inputs for augmentation tests:
      empty/.gitkeep           a folder with no audio file in it
      stereo_44k/stereo_44k.wav  1 s stereo 44.1 kHz 16-bit WAV noise
      long_rir/long_rir_3s.flac  a 3 s impulse response (longer than a 2 s clip)

so that audiomentations' ``AddBackgroundNoise(sounds_path=...)`` and
``ApplyImpulseResponse(ir_path=...)`` run offline.  audiomentations only picks
files by audio extension (.flac/.wav/...), so the README.md files (and
.gitkeep) are never loaded as audio.

All noise is shaped in the frequency domain over the whole file (circularly),
and the babble tracks are placed with wrap-around, so every noise file loops
seamlessly when AddBackgroundNoise repeats it under a longer clip.

Determinism: every random draw comes from ``numpy.random.default_rng`` with a
fixed seed; samples are quantised to int16 here, and espeak-ng, soxr and
libsndfile's FLAC encoder are deterministic for a given tool version, so a
re-run rewrites byte-identical files.

Tools needed: espeak-ng (babble only), numpy, scipy, soundfile, soxr;
audiomentations for the self-check.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
from scipy import signal

REPO = Path(__file__).resolve().parents[1]
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))
from fixtures.common import espeak_wav  # noqa: E402  (espeak-ng -> float64 samples, rate)

NOISE_DIR = REPO / "sweaug" / "sample" / "noise"
RIR_DIR = REPO / "sweaug" / "sample" / "rir"
BAD_DIR = REPO / "tests" / "fixtures" / "noise_bad"

SR = 16000
TARGET_RMS_DBFS = -20.0
RIR_PEAK = 0.99
SIZE_BUDGET = 350_000  # bytes, noise + rir together
# Noise is stored on a 14-bit grid in the 16-bit FLAC (2 zero LSBs, which FLAC's
# "wasted bits" detection drops): ~2 bits/sample smaller; the quantisation floor
# (-89 dBFS RMS) is ~69 dB below the noise itself.  RIRs keep all 16 bits.
NOISE_BITS = 14


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------
def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def to_rms(x: np.ndarray, dbfs: float = TARGET_RMS_DBFS) -> np.ndarray:
    y = x * (10 ** (dbfs / 20) / rms(x))
    peak = float(np.max(np.abs(y)))
    assert peak < 0.99, f"would clip at {dbfs} dBFS RMS (peak {peak:.3f})"
    return y


def quantise(x: np.ndarray, bits: int = 16) -> np.ndarray:
    """float in [-1, 1) -> int16 on a ``bits``-bit grid (the low 16-bits bits are 0),
    refusing to clip."""
    assert np.all(np.isfinite(x))
    step = 2 ** (16 - bits)
    q = np.round(np.asarray(x, dtype=np.float64) * 32767.0 / step) * step
    assert q.max() <= 32767 and q.min() >= -32768, "clipping"
    return q.astype(np.int16)


def write_flac(path: Path, x: np.ndarray, bits: int = 16, sr: int = SR) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, quantise(x, bits), sr, format="FLAC", subtype="PCM_16", compression_level=1.0)


def shaped_noise(rng: np.random.Generator, n: int, gain_of_f) -> np.ndarray:
    """Gaussian noise with amplitude spectrum ``gain_of_f(f)`` (circular, loops seamlessly)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    g = np.asarray(gain_of_f(f), dtype=np.float64)
    g[0] = 0.0  # no DC
    return np.fft.irfft(spec * g, n)


def bandpass_gain(f: np.ndarray, lo: float | None, hi: float | None, order: int = 4) -> np.ndarray:
    """Butterworth-shaped magnitude response evaluated on ``f`` (zero-phase, circular)."""
    g = np.ones_like(f)
    fs = np.maximum(f, 1e-9)
    if hi is not None:
        g /= np.sqrt(1 + (fs / hi) ** (2 * order))
    if lo is not None:
        g /= np.sqrt(1 + (lo / fs) ** (2 * order))
    return g


# ---------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------
def white(seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return to_rms(rng.standard_normal(int(seconds * SR)))


def pink(seconds: float, seed: int) -> np.ndarray:
    """Power ~ 1/f (amplitude 1/sqrt(f)), flat below 10 Hz."""
    rng = np.random.default_rng(seed)
    return to_rms(shaped_noise(rng, int(seconds * SR), lambda f: 1 / np.sqrt(np.maximum(f, 10.0))))


def brown(seconds: float, seed: int) -> np.ndarray:
    """Power ~ 1/f^2 (amplitude 1/f), flat below 20 Hz (no sub-audio drift)."""
    rng = np.random.default_rng(seed)
    return to_rms(shaped_noise(rng, int(seconds * SR), lambda f: 1 / np.maximum(f, 20.0)))


def hum_fan(seconds: float, seed: int) -> np.ndarray:
    """50 Hz mains hum (8 harmonics, odd ones stronger) + a fan: 20-250 Hz noise
    rumble with an 18 Hz blade-rate amplitude flutter."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    amps = [1.0, 0.45, 0.6, 0.2, 0.3, 0.08, 0.12, 0.04]
    phases = rng.uniform(0, 2 * np.pi, len(amps))
    hum = sum(a * np.sin(2 * np.pi * 50 * (k + 1) * t + p) for k, (a, p) in enumerate(zip(amps, phases)))
    rumble = shaped_noise(rng, n, lambda f: bandpass_gain(f, 20.0, 250.0, order=3))
    rumble *= 1 + 0.35 * np.sin(2 * np.pi * 18 * t)  # whole periods in 'seconds': still loops
    return to_rms(0.8 * hum / rms(hum) + rumble / rms(rumble))


# (espeak voice, sentences, relative level dB)
BABBLE_VOICES: list[tuple[list[str], list[str], float]] = [
    (["-v", "sv+f2", "-s", "165", "-p", "55"],
     ["Har du sett min nya cykel?", "Vi ses vid stationen i morgon bitti."], 0.0),
    (["-v", "sv+m3", "-s", "180", "-p", "35"],
     ["Jag tror att det kommer att regna i eftermiddag.", "Kaffet är slut igen."], -2.0),
    (["-v", "sv+f4", "-s", "190", "-p", "62"],
     ["Hon skulle flytta till Göteborg efter sommaren.", "Vad kostar biljetten?"], -5.0),
    (["-v", "en+m2", "-s", "170", "-p", "45"],
     ["Could you pass me the salt, please?", "The meeting was moved to Thursday."], -3.5),
    (["-v", "de+f3", "-s", "175", "-p", "50"],
     ["Wir haben den Zug leider verpasst.", "Das Essen war wirklich gut."], -6.5),
    (["-v", "fi+m1", "-s", "160", "-p", "40"],
     ["Huomenna on taas kylmä päivä.", "Missä on lähin kauppa?"], -8.0),
]


def trim_silence(x: np.ndarray, sr: int) -> np.ndarray:
    hop = sr // 100
    nfr = len(x) // hop
    e = np.sqrt(np.mean(x[: nfr * hop].reshape(nfr, hop) ** 2, axis=1))
    on = np.nonzero(e > e.max() * 0.02)[0]
    return x[on[0] * hop: (on[-1] + 1) * hop]


def babble(seconds: float, seed: int) -> np.ndarray:
    """Six espeak talkers (3 Swedish, English, German, Finnish), each saying its own
    sentences with random pauses, placed at random circular offsets and levels;
    gently low-passed (2nd order, 4 kHz, zero-phase circular) like distant talkers."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    mix = np.zeros(n)
    for args, sentences, level_db in BABBLE_VOICES:
        parts = []
        for text in sentences:
            x, sr = espeak_wav(args, text)
            x = soxr.resample(trim_silence(x, sr), sr, SR, quality="HQ")
            parts += [x, np.zeros(int(rng.uniform(0.15, 0.45) * SR))]
        track = np.concatenate(parts)
        while len(track) < n:  # keep each talker busy for the whole file
            track = np.concatenate([track, track])
        track = track[:n]
        fade = int(0.02 * SR)  # no click where the circular wrap joins
        track[-fade:] *= np.linspace(1, 0, fade)
        track[:fade] *= np.linspace(0, 1, fade)
        track = np.roll(track / rms(track), int(rng.integers(n)))
        jitter = rng.uniform(-1.0, 1.0)
        mix += track * 10 ** ((level_db + jitter) / 20)
    spec = np.fft.rfft(mix) * bandpass_gain(np.fft.rfftfreq(n, 1 / SR), None, 4000.0, order=2)
    return to_rms(np.fft.irfft(spec, n))


NOISE = [
    ("white.flac", lambda: white(3.0, 101),
     "white noise (flat spectrum), Gaussian, numpy default_rng(101), 3 s, -20 dBFS RMS"),
    ("pink.flac", lambda: pink(3.0, 102),
     "pink noise (power ~1/f, flat below 10 Hz), FFT-shaped Gaussian, seed 102, 3 s, -20 dBFS RMS"),
    ("brown.flac", lambda: brown(3.0, 103),
     "brown noise (power ~1/f^2, flat below 20 Hz), FFT-shaped Gaussian, seed 103, 3 s, -20 dBFS RMS"),
    ("babble.flac", lambda: babble(4.0, 104),
     "babble: 6 espeak-ng talkers (sv+f2, sv+m3, sv+f4, en+m2, de+f3, fi+m1), different sentences, "
     "random circular offsets, levels 0 to -8 dB (+-1 dB), low-passed at 4 kHz (2nd order), seed 104, "
     "4 s, -20 dBFS RMS"),
    ("hum_fan.flac", lambda: hum_fan(4.0, 105),
     "hum + fan: 50 Hz mains hum with 8 harmonics + 20-250 Hz noise rumble with 18 Hz blade flutter, "
     "seed 105, 4 s, -20 dBFS RMS"),
]


# ---------------------------------------------------------------------------
# Room impulse responses
# ---------------------------------------------------------------------------
def make_rir(seed: int, rt60: float, seconds: float, predelay_ms: float,
             early_ms: tuple[float, float], n_early: int, tail_gain: float) -> np.ndarray:
    """Direct-path impulse + a few early reflections + an exponentially decaying
    Gaussian tail (60 dB down after ``rt60`` s; the >4 kHz band decays 1.6x faster,
    like air/wall absorption), faded out over the last 10 %, peak-normalised."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    h = np.zeros(n)
    d0 = int(round(predelay_ms * SR / 1000))
    h[d0] = 1.0
    delays = np.sort(rng.uniform(*early_ms, n_early))
    for d in delays:
        idx = d0 + int(round(d * SR / 1000))
        # farther reflections are weaker (~1/distance), random sign (wall phase)
        h[idx] += rng.choice([-1.0, 1.0]) * rng.uniform(0.35, 0.7) * np.sqrt(early_ms[0] / d)
    m = n - d0
    t = np.arange(m) / SR
    noise = rng.standard_normal(m)
    sos = signal.butter(4, 4000, "low", fs=SR, output="sos")
    low = signal.sosfiltfilt(sos, noise)
    high = noise - low
    tail = low * np.exp(-6.908 * t / rt60) + high * np.exp(-6.908 * 1.6 * t / rt60)
    tail *= 1 - np.exp(-t / 0.004)  # diffuse tail builds up over a few ms
    h[d0:] += tail_gain * tail
    fade = n // 10
    h[-fade:] *= 0.5 * (1 + np.cos(np.linspace(0, np.pi, fade)))
    return h * (RIR_PEAK / float(np.max(np.abs(h))))


RIRS = [
    ("rir_rt60_200ms.flac", lambda: make_rir(201, 0.2, 0.25, 1.0, (2.0, 18.0), 5, 0.30),
     "medium-damped room, RT60 0.2 s, 0.25 s long: direct impulse at 1 ms, 5 early reflections 2-18 ms, "
     "exponentially decaying Gaussian tail (seed 201), peak 0.99"),
    ("rir_rt60_400ms.flac", lambda: make_rir(202, 0.4, 0.5, 1.5, (3.0, 25.0), 6, 0.25),
     "living room / office, RT60 0.4 s, 0.5 s long: direct at 1.5 ms, 6 early reflections 3-25 ms, "
     "decaying tail (seed 202), peak 0.99"),
    ("rir_rt60_600ms.flac", lambda: make_rir(203, 0.6, 0.75, 2.0, (4.0, 35.0), 6, 0.22),
     "classroom / hall, RT60 0.6 s, 0.75 s long: direct at 2 ms, 6 early reflections 4-35 ms, "
     "decaying tail (seed 203), peak 0.99"),
    ("rir_small_room.flac", lambda: make_rir(204, 0.15, 0.2, 0.5, (0.8, 6.0), 6, 0.35),
     "small room (car / booth / bathroom-sized), RT60 0.15 s, 0.2 s long: direct at 0.5 ms, "
     "6 strong early reflections 0.8-6 ms, decaying tail (seed 204), peak 0.99"),
]


# ---------------------------------------------------------------------------
# Bad inputs for tests
# ---------------------------------------------------------------------------
BAD_README = """\
# noise_bad: bad inputs for augmentation tests

Generated by `scripts/make_noise_sample.py` (do not edit by hand).

- `empty/` - no audio file, only `.gitkeep` (audiomentations filters by audio extension,
  so `.gitkeep` is ignored): `AddBackgroundNoise` / `ApplyImpulseResponse` raise
  `AssertionError` at construction.
- `stereo_44k/stereo_44k.wav` - 1 s, 2-channel, 44.1 kHz, 16-bit PCM WAV of
  uncorrelated white noise (seed 301, -20 dBFS RMS); not the 16 kHz mono the sample uses.
- `long_rir/long_rir_3s.flac` - a 3 s, 16 kHz mono impulse response (RT60 2.5 s,
  seed 302), longer than a typical 2 s clip.
"""


def make_bad() -> None:
    empty = BAD_DIR / "empty"
    if BAD_DIR.exists():
        shutil.rmtree(BAD_DIR)
    empty.mkdir(parents=True)
    (empty / ".gitkeep").write_bytes(b"")
    (BAD_DIR / "README.md").write_text(BAD_README, encoding="utf-8")

    rng = np.random.default_rng(301)
    st = rng.standard_normal((44100, 2))
    st *= 0.1 / np.sqrt(np.mean(st ** 2, axis=0))
    (BAD_DIR / "stereo_44k").mkdir()
    sf.write(BAD_DIR / "stereo_44k" / "stereo_44k.wav",
             np.stack([quantise(st[:, 0]), quantise(st[:, 1])], axis=1), 44100, subtype="PCM_16")

    # low tail gain keeps the FLAC small; the tail still runs the full 3 s
    write_flac(BAD_DIR / "long_rir" / "long_rir_3s.flac",
               make_rir(302, 2.5, 3.0, 1.0, (3.0, 30.0), 6, 0.05))


# ---------------------------------------------------------------------------
# Build
# ---------------------------------------------------------------------------
def write_readme(folder: Path, title: str, entries: list[tuple[str, object, str]], bits: int) -> None:
    grid = "" if bits == 16 else f", samples on a {bits}-bit grid (low {16 - bits} bits zero, for size)"
    lines = [f"# {title}", "",
             f"Generated by `scripts/make_noise_sample.py` (16 kHz mono 16-bit FLAC{grid}; deterministic).",
             "Every noise file loops seamlessly (circular shaping)." if folder == NOISE_DIR else
             "Direct path + early reflections + exponentially decaying Gaussian tail; "
             "RT60 = time for the <4 kHz part of the tail to fall 60 dB (>4 kHz decays 1.6x faster).", ""]
    lines += [f"- `{name}` - {desc}" for name, _, desc in entries]
    (folder / "README.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def build() -> None:
    for folder, entries, title in ((NOISE_DIR, NOISE, "Background noise"),
                                   (RIR_DIR, RIRS, "Room impulse responses")):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        bits = NOISE_BITS if folder == NOISE_DIR else 16
        for name, make, _ in entries:
            write_flac(folder / name, make(), bits)
        write_readme(folder, title, entries, bits)
    make_bad()


def digest(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


# ---------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------
def check() -> None:
    from audiomentations import AddBackgroundNoise, ApplyImpulseResponse

    total = 0
    for folder, entries in ((NOISE_DIR, NOISE), (RIR_DIR, RIRS)):
        for name, _, _ in entries:
            p = folder / name
            info = sf.info(p)
            assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "FLAC"), (p, info)
            x, _ = sf.read(p)
            total += p.stat().st_size
            if folder == NOISE_DIR:
                assert 3.0 <= len(x) / SR <= 5.0, p
                assert abs(20 * np.log10(rms(x)) - TARGET_RMS_DBFS) < 0.1, p
                assert np.max(np.abs(x)) < 0.99, p
            else:
                assert 0.2 <= len(x) / SR <= 0.8, p
                assert abs(np.max(np.abs(x)) - RIR_PEAK) < 1e-3, p
    assert total <= SIZE_BUDGET, f"noise+rir = {total} bytes > {SIZE_BUDGET}"

    t = np.arange(2 * SR) / SR
    clip = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    for seed in range(12):  # several draws -> every file gets picked
        np.random.seed(seed)
        random.seed(seed)
        y = AddBackgroundNoise(sounds_path=NOISE_DIR, min_snr_db=5, max_snr_db=20, p=1.0)(clip, SR)
        assert y.shape == clip.shape and np.all(np.isfinite(y))
        y = ApplyImpulseResponse(ir_path=RIR_DIR, p=1.0)(clip, SR)
        assert y.shape == clip.shape and np.all(np.isfinite(y))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "had to be resampled" warning is expected
        y = AddBackgroundNoise(sounds_path=BAD_DIR / "stereo_44k", p=1.0)(clip, SR)
    assert y.shape == clip.shape and np.all(np.isfinite(y))
    for keep in (True, False):
        y = ApplyImpulseResponse(ir_path=BAD_DIR / "long_rir", p=1.0, leave_length_unchanged=keep)(clip, SR)
        assert len(y) == (len(clip) if keep else len(clip) + 3 * SR - 1) and np.all(np.isfinite(y))
    for cls, kw in ((AddBackgroundNoise, "sounds_path"), (ApplyImpulseResponse, "ir_path")):
        try:
            cls(**{kw: BAD_DIR / "empty"}, p=1.0)
        except AssertionError:
            pass
        else:
            raise AssertionError(f"{cls.__name__} accepted an empty folder")
    print(f"ok: noise+rir {total} bytes; noise {digest(NOISE_DIR)[:12]} rir {digest(RIR_DIR)[:12]} "
          f"noise_bad {digest(BAD_DIR)[:12]}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-check", action="store_true", help="build only, skip the audiomentations self-check")
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        print("espeak-ng not found (apt install espeak-ng)", file=sys.stderr)
        return 1
    build()
    if not args.no_check:
        check()
    return 0


if __name__ == "__main__":
    sys.exit(main())
