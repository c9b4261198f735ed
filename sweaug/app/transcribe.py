"""Transcription for ``sweaug app``: any upload -> 16 kHz mono (``sweaug.build.audio``) -> pieces of
at most the model's window, cut at the quietest moment -> Whisper with language and task forced
(the guard of ``train/evaluate.py``) -> one transcript.

:class:`App` holds the models to serve and has the predict function the page (and the Gradio
client) calls: ``App.predict(audio_path, mix) -> (transcript, status)``. It never raises for a
bad input: the status says what was wrong.

numpy and the standard library at import; torch/transformers/soundfile inside the functions.
"""
from __future__ import annotations

import logging
import math
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

from ..build.audio import SILENCE_DBFS, TARGET_SR, AudioError, decode, to_mono_16k
from .models import AppError, ModelEntry

log = logging.getLogger("sweaug.app")
FRAME = 320  # 20 ms at 16 kHz: the unit in which cut points are searched
SEARCH = 0.5  # the second half of a window is searched for the quietest moment to cut at
SMOOTH = 5  # frames (100 ms) of energy averaged: a cut lands in a pause, not a stop consonant
FORMATS = "WAV, FLAC, MP3, OGG/Vorbis, OGG/Opus"
#: new tokens allowed per second of audio: Whisper's own budget (448 tokens per 30 s window);
#: it also stops a looping model early instead of filling the decoder to the end
TOKENS_PER_SECOND = 15


def rms_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return 20.0 * np.log10(rms) if rms > 0 else -200.0


def _ffmpeg_wav(path: str, max_seconds: float) -> bytes | None:
    """The file as WAV bytes through FFmpeg (WebM/M4A/AAC... that libsndfile does not read),
    at most ``max_seconds`` + 1 s of it; None when ffmpeg is absent or cannot read it."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        return None
    try:
        p = subprocess.run([exe, "-nostdin", "-v", "error", "-i", path, "-t", str(max_seconds + 1),
                            "-vn", "-f", "wav", "-"], capture_output=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return p.stdout if p.returncode == 0 and len(p.stdout) > 44 else None


def load_audio(path, max_seconds: float) -> np.ndarray:
    """A recording of any format/rate/channel count that ``sweaug.build.audio`` reads (else FFmpeg,
    when installed) -> float32 mono 16 kHz. :class:`AppError` with a message for the page when
    it is missing, not audio, empty, longer than ``max_seconds``, or silent."""
    import soundfile as sf

    if path is None or str(path) == "":
        raise AppError("No audio: record with the microphone or upload a file first.")
    path = str(path)
    name = Path(path).name
    if not Path(path).is_file():
        raise AppError(f"{name}: the uploaded file is missing on the server; upload it again.")
    too_long = (f"{name} is {{:.1f}} minutes long; this app transcribes at most "
                f"{max_seconds / 60:g} minutes. Cut it into shorter parts.")
    try:
        info = sf.info(path)
        if info.samplerate and info.frames / info.samplerate > max_seconds + 0.5:
            raise AppError(too_long.format(info.frames / info.samplerate / 60))
    except AppError:
        raise
    except Exception:  # not readable by libsndfile: decode (or FFmpeg) says why below
        pass
    try:
        x, sr = decode(path)
    except AudioError as e:
        wav = _ffmpeg_wav(path, max_seconds) if e.reason == "corrupt_audio" else None
        if wav is None:
            what = {"empty_audio": "it is empty", "truncated_audio": "it is truncated"}.get(
                e.reason, "it is not an audio file this app can read")
            detail = (e.detail or e.reason).replace(f"'{path}'", name).replace(path, name)
            detail = detail.rstrip(".")
            raise AppError(f"Could not read {name}: {what} ({detail}). "
                           f"Upload {FORMATS}"
                           + (" or another format FFmpeg reads" if shutil.which("ffmpeg") else "")
                           + " (any sample rate, mono or stereo).") from None
        try:
            x, sr = decode(wav)
        except AudioError as e2:
            raise AppError(f"Could not read {name}: {e2}.") from None
    if not np.isfinite(x).all():
        raise AppError(f"Could not read {name}: it has {int((~np.isfinite(x)).sum())} "
                       f"non-finite (NaN/inf) samples.")
    if x.shape[0] / sr > max_seconds + 0.5:
        raise AppError(too_long.format(x.shape[0] / sr / 60))
    audio = to_mono_16k(x, sr)
    level = rms_dbfs(audio)
    if level < SILENCE_DBFS:
        raise AppError(f"{name} is silent (level {level:.0f} dBFS, "
                       f"{audio.size / TARGET_SR:.1f} s): there is no speech to transcribe. "
                       f"Check the microphone.")
    return audio


def chunk_bounds(audio: np.ndarray, window: int) -> list[tuple[int, int]]:
    """``[(start, end)]`` sample ranges covering ``audio``, each at most ``window`` samples;
    every cut is at the quietest moment (20 ms frames, energy averaged over 100 ms) of the
    second half of the window, so that a piece ends in a pause where there is one; the same
    for the same input."""
    n = int(audio.size)
    bounds, start = [], 0
    while n - start > window:
        lo, hi = start + int(window * (1 - SEARCH)), start + window
        k = (hi - lo) // FRAME
        if k < 1:
            cut = hi
        else:
            seg = audio[lo:lo + k * FRAME].astype(np.float64).reshape(k, FRAME)
            energy = np.mean(seg * seg, axis=1)
            if k >= SMOOTH:  # a moving average (normalized at the edges: no zero padding)
                box = np.ones(SMOOTH)
                energy = (np.convolve(energy, box, mode="same")
                          / np.convolve(np.ones(k), box, mode="same"))
            cut = lo + int(np.argmin(energy)) * FRAME + FRAME // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds


class Transcriber:
    """A Whisper model folder (or Hub id) that transcribes 16 kHz mono audio in ``language``
    with ``task`` forced; refuses (:class:`AppError`) a model that cannot be forced."""

    def __init__(self, model: str, language: str = "sv", task: str = "transcribe",
                 batch_size: int = 4):
        from transformers import (WhisperFeatureExtractor, WhisperForConditionalGeneration,
                                  WhisperTokenizerFast)

        from ..train.evaluate import (EvaluationError, _quiet_generate_logs,
                                      check_generation_config, label_ids)
        from ..train.features import LogMel

        from ..train.pretrained import load_kwargs

        kw = load_kwargs(model)  # a folder or a complete cache: no request to the Hub
        try:
            self.model = WhisperForConditionalGeneration.from_pretrained(model, **kw).eval()
            fe = WhisperFeatureExtractor.from_pretrained(model, **kw)
            self.tok = WhisperTokenizerFast.from_pretrained(model, **kw)
        except (OSError, ValueError) as e:
            raise AppError(f"{model}: cannot load the Whisper model, its feature extractor and "
                           f"tokenizer: {str(e).splitlines()[0][:300]}") from None
        try:
            ids = check_generation_config(self.model, language, task)
        except EvaluationError as e:
            raise AppError(f"{model}: cannot force language {language!r} and task {task!r}, so "
                           f"it is not served: {e}") from None
        gen = self.model.generation_config
        prefix = label_ids(self.tok, "", language, task)[:-1]
        if prefix[:3] != [gen.decoder_start_token_id, ids["language_id"], ids["task_id"]]:
            raise AppError(f"{model}: the tokenizer's prefix ids {prefix} do not match the "
                           f"model's generation config (tokenizer and model differ)")
        positions = int(self.model.config.max_source_positions)
        if int(fe.nb_max_frames) != 2 * positions:
            raise AppError(f"{model}: the feature extractor's window ({fe.nb_max_frames} frames) "
                           f"does not match the model's ({2 * positions} frames)")
        _quiet_generate_logs()  # transformers' per-batch notes about its own internals
        self.logmel = LogMel(fe)
        self.window = int(fe.n_samples)
        self.kw = {"language": ids["language_token"][2:-2], "task": task}
        self.max_new_tokens = int(self.model.config.max_target_positions) - len(prefix)
        self.batch_size = batch_size
        self.name = model

    @property
    def seconds(self) -> float:
        return self.window / TARGET_SR

    def __call__(self, audio: np.ndarray) -> tuple[str, int]:
        """``(transcript, pieces)`` of a 16 kHz mono clip of any length; silent pieces are
        skipped (and not counted)."""
        import torch

        pieces = [audio[a:b] for a, b in chunk_bounds(audio, self.window)]
        pieces = [p for p in pieces if rms_dbfs(p) >= SILENCE_DBFS]
        texts = []
        with torch.inference_mode():
            for i in range(0, len(pieces), self.batch_size):
                batch = pieces[i:i + self.batch_size]
                x = torch.from_numpy(np.stack([self.logmel(p) for p in batch]))
                longest = max(p.size for p in batch) / TARGET_SR
                budget = min(self.max_new_tokens, max(16, math.ceil(TOKENS_PER_SECOND * longest)))
                out = self.model.generate(x.to(self.model.dtype), max_new_tokens=budget, **self.kw)
                seqs = out.sequences if hasattr(out, "sequences") else out
                texts += [t.strip() for t in self.tok.batch_decode(seqs, skip_special_tokens=True)]
        return " ".join(t for t in texts if t), len(pieces)


class App:
    """The models to serve (by name, in order; the first is the default) and the predict
    function. Models load on first use (``load(name)`` loads one ahead)."""

    def __init__(self, entries: list[ModelEntry], max_minutes: float = 10.0,
                 language: str = "sv", task: str = "transcribe", title: str = ""):
        if not entries:
            raise AppError("no model to serve")
        if not max_minutes > 0:
            raise AppError(f"--max-minutes must be positive, got {max_minutes}")
        self.entries = {e.name: e for e in entries}
        self.max_seconds = float(max_minutes) * 60
        self.language, self.task, self.title = language, task, title
        self._models: dict[str, Transcriber] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def load(self, name: str) -> Transcriber:
        with self._lock:
            if name not in self._models:
                self._models[name] = Transcriber(self.entries[name].model, self.language,
                                                 self.task)
            return self._models[name]

    def info(self, name: str | None) -> str:
        """The model card (Markdown) of ``name``."""
        entry = self.entries.get(name or self.names[0])
        return entry.info_markdown() if entry else f"Unknown model {name!r}."

    def predict(self, audio_path, mix: str | None = None) -> tuple[str, str]:
        """``(transcript, status)`` for a recording/upload (a file path) with the model of
        ``mix`` (default: the first). Bad input gives an empty transcript and a status
        starting with ``"⚠️"`` that says what was wrong; never raises."""
        name = mix or self.names[0]
        try:
            if name not in self.entries:
                raise AppError(f"Unknown model {name!r}; choose one of: {', '.join(self.names)}.")
            entry = self.entries[name]
            t0 = time.perf_counter()
            audio = load_audio(audio_path, self.max_seconds)
            model = self.load(name)
            text, pieces = model(audio)
        except AppError as e:
            return "", f"⚠️ {e}"
        except Exception as e:  # an unexpected failure: logged with its traceback, said plainly
            log.exception("transcription failed")
            return "", f"⚠️ Transcription failed ({type(e).__name__}: {str(e)[:300]})."
        seconds = audio.size / TARGET_SR
        how = (f"{seconds:.1f} s of audio in {pieces} piece{'s' * (pieces != 1)} of at most "
               f"{model.seconds:g} s, {time.perf_counter() - t0:.1f} s; language "
               f"{self.language!r} and task {self.task!r} forced")
        model_line = f"Model **{name}** — {entry.wer_line()}."
        if not text:
            return "", (f"⚠️ The model produced no text for this recording ({how}). "
                        f"{model_line}")
        return text, f"Transcribed {how}. {model_line}"
