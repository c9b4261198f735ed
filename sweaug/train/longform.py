"""Whisper-format evaluations (issue #17): long-form WER, timestamp error and the no-speech
hallucination rate, each with a bootstrap interval like the sentence WER.

- **long-form**: held-out test utterances of a sentence set, VAD-trimmed and stitched in set
  order (gaps drawn like ``sweaug windows``) into recordings of a drawn length (1-5 min by
  default), transcribed whole with transformers' sequential long-form generation (features of
  the whole recording, ``return_timestamps=True``: it seeks by the last predicted timestamp) and
  scored on the whole recording (the interval resamples recordings);
- **timestamps** (a ``sweaug windows`` test set): each speech window decoded with timestamps;
  its predicted segments (a timestamp, text, a timestamp) are matched to the reference segments
  in order, each reference to the unused prediction that overlaps it most; the error is the
  mean |start| and |end| difference of matched segments (times are on the 0.02 s grid, so the
  sums are exact counts of steps), with the share of reference segments matched; the closed
  segments' text gives the window WER (a straddling segment is, as in training, only a start);
- **no-speech** (the same set's no-speech windows: noise and near-silence): the share for which
  the model writes any word (after normalization) — the hallucination rate — by kind too.

No torch at import (the CLI imports this lazily).
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

STEP = 0.02


def stitch(samples: Iterable[dict], recordings: int, min_seconds: float, max_seconds: float,
           seed: int, gap: tuple[float, float] = (0.1, 0.6)) -> list[dict]:
    """Up to ``recordings`` recordings ``{"key", "keys", "audio", "text", "seconds"}`` from
    consecutive ``samples`` (``{"key", "audio", "text"}``), each utterance used once, in order;
    each recording takes utterances until it reaches a length drawn in [min, max] seconds
    (seeded), never going past ``max_seconds`` (an utterance that would opens the next one). A
    recording is kept only when it reaches ``min_seconds`` (the set ran out otherwise); the
    result says how many there are."""
    from ..windows.vad import speech_bounds

    if not 0 < min_seconds <= max_seconds:
        raise ValueError(f"long-form: need 0 < min_seconds <= max_seconds, got {min_seconds}, "
                         f"{max_seconds}")
    rng = np.random.default_rng([int(seed), 17])
    out: list[dict] = []
    it = iter(samples)
    pending = None
    while len(out) < recordings:
        goal = rng.uniform(min_seconds, max_seconds) * 16000
        parts, keys, texts, n = [], [], [], 0
        while True:
            s = pending if pending is not None else next(it, None)
            pending = None
            if s is None:
                break
            x = np.asarray(s["audio"], dtype=np.float32)
            b = speech_bounds(x)
            if b is None or not s["text"].strip():
                continue
            x = x[b[0]:b[1]]
            g = np.zeros(int(rng.uniform(*gap) * 16000), np.float32)
            if parts and (n >= goal or n + len(g) + len(x) > max_seconds * 16000):
                pending = s  # opens the next recording
                break
            parts += [g, x]
            keys.append(s["key"])
            texts.append(s["text"].strip())
            n += len(g) + len(x)
        if n < min_seconds * 16000:
            break
        audio = np.concatenate(parts + [np.zeros(int(0.3 * 16000), np.float32)])
        out.append({"key": f"long{len(out):03d}", "keys": keys, "audio": audio,
                    "text": " ".join(texts), "seconds": round(len(audio) / 16000, 2)})
    return out


def _features(fe, audios: list[np.ndarray], device, dtype):
    """Log-mel features of whole recordings (not cut at the window, which :class:`LogMel`
    does) and their mask; a batch shorter than the window is padded to it (what short-form
    generation expects)."""
    longest = max(len(a) for a in audios)
    pad = "longest" if longest > fe.n_samples else "max_length"
    f = fe(audios, sampling_rate=16000, return_tensors="pt", truncation=False, padding=pad,
           return_attention_mask=True)
    return (f.input_features.to(device=device, dtype=dtype),
            f.attention_mask.to(device) if "attention_mask" in f else None)


def _wer_entry(refs: list[str], hyps: list[str], language: str, bootstrap: int, seed: int,
               alpha: float) -> dict:
    """WER and normalized WER with their intervals, and the per-item counts (for paired Δ)."""
    from .evaluate import bootstrap_ci, normalized_scores, wer_stats

    errors, words = wer_stats(refs, hyps)
    wer, lo, hi = bootstrap_ci(errors, words, bootstrap, seed, alpha)
    return {"wer": wer, "wer_lo": lo, "wer_hi": hi,
            **normalized_scores(refs, hyps, language, bootstrap, seed, alpha),
            "refs": refs, "hyps": hyps, "errors": errors, "words": words}


def evaluate_long_form(model, tokenizer, feature_extractor, recordings: list[dict],
                       language: str = "sv", task: str = "transcribe", batch_size: int = 4,
                       bootstrap: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """WER of whole recordings (:func:`stitch`) under sequential long-form generation."""
    from .evaluate import EvaluationError, _quiet_generate_logs, check_generation_config

    if not recordings:
        raise EvaluationError("long-form: no recordings to evaluate (the set is shorter than "
                              "min_seconds)")
    ids = check_generation_config(model, language, task)
    _quiet_generate_logs()
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    was = model.training
    model.eval()
    hyps: list[str] = []
    t0 = time.perf_counter()
    try:
        import torch

        with torch.no_grad():
            for i in range(0, len(recordings), batch_size):
                part = recordings[i:i + batch_size]
                x, mask = _features(feature_extractor, [r["audio"] for r in part], device,
                                    dtype)
                out = model.generate(x, attention_mask=mask, return_timestamps=True,
                                     condition_on_prev_tokens=False,
                                     language=ids["language_token"][2:-2], task=task)
                seqs = out["sequences"] if isinstance(out, dict) else out
                hyps += [h.strip() for h in tokenizer.batch_decode(seqs, skip_special_tokens=True)]
    finally:
        model.train(was)
    seconds = time.perf_counter() - t0
    refs = [r["text"] for r in recordings]
    audio = sum(len(r["audio"]) for r in recordings) / 16000
    return {"kind": "long-form", "n": len(refs),
            **_wer_entry(refs, hyps, ids["language_token"][2:-2], bootstrap, seed, alpha),
            "keys": [r["key"] for r in recordings],
            "utterances": [len(r["keys"]) for r in recordings],
            "recording_seconds": [r["seconds"] for r in recordings],
            "audio_seconds": round(audio, 2), "seconds": round(seconds, 3),
            "alpha": alpha, "bootstrap": bootstrap, "seed": seed,
            "window_seconds": round(feature_extractor.n_samples / 16000, 3)}


def window_samples(shards: Iterable) -> Iterator[dict]:
    """``{"key", "audio", "meta"}`` of a window set's samples, in shard order."""
    from ..build.shards import iter_samples
    from .data import decode_flac
    from .samples import check_members, sample_meta

    for shard in shards:
        for key, files in iter_samples(Path(shard)):
            check_members(shard, key, files)
            meta = sample_meta(shard, key, files, ("segments", "no_speech"))
            yield {"key": key, "audio": decode_flac(files["flac"]), "meta": meta}


def predicted_segments(ids: list[int], ts0: int, eot: int) -> list[tuple[int, int, list[int]]]:
    """``(start step, end step, text ids)`` of the closed segments in a timestamped decode
    (``ts0``: the id of ``<|0.00|>``); an open segment at the end (a straddle) is left out."""
    segs, start, text = [], None, []
    for t in ids:
        if t == eot:
            break
        if ts0 <= t <= ts0 + 1500:
            step = t - ts0
            if start is None or not text:
                start = step  # opens (or reopens: "<|1.20|><|1.60|>" between segments)
            else:
                segs.append((start, step, text))
                start, text = None, []
        elif start is not None and t < ts0:
            text.append(t)
    return segs


def match(refs: list[tuple[int, int]], preds: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Pairs (reference, prediction) of segment indices: each reference, in order, takes the
    unused prediction that overlaps it most (none when nothing overlaps)."""
    used, pairs = set(), []
    for i, (a, b) in enumerate(refs):
        best, score = None, 0
        for j, (c, d) in enumerate(preds):
            ov = min(b, d) - max(a, c)
            if j not in used and ov > score:
                best, score = j, ov
        if best is not None:
            used.add(best)
            pairs.append((i, best))
    return pairs


def evaluate_windows(model, tokenizer, feature_extractor, samples: Iterable[dict],
                     language: str = "sv", task: str = "transcribe", batch_size: int = 8,
                     max_samples: int | None = None, bootstrap: int = 1000, seed: int = 0,
                     alpha: float = 0.05) -> dict:
    """Timestamp error and window WER on the speech windows, the hallucination rate on the
    no-speech windows, of a ``sweaug windows`` set (see the module docstring)."""
    import torch

    from .evaluate import (EvaluationError, _quiet_generate_logs, bootstrap_ci,
                           check_generation_config, wer_normalize)
    from .features import LogMel

    ids = check_generation_config(model, language, task)
    _quiet_generate_logs()
    lang = ids["language_token"][2:-2]
    conv = tokenizer.convert_tokens_to_ids
    ts0, eot = conv("<|0.00|>"), conv("<|endoftext|>")
    device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    logmel = LogMel(feature_extractor)  # windows fit the model's window: no long-form features
    speech, silent = [], []
    for i, s in enumerate(samples):
        if max_samples is not None and i >= max_samples:
            break
        if len(s["audio"]) > feature_extractor.n_samples:
            raise EvaluationError(f"window {s['key']}: {len(s['audio']) / 16000:g} s, longer than "
                                  f"the model's {feature_extractor.n_samples / 16000:g}-s window")
        (silent if s["meta"]["no_speech"] else speech).append(s)
    if not speech and not silent:
        raise EvaluationError("no windows to evaluate")
    was = model.training
    model.eval()
    t0 = time.perf_counter()
    step_err, bounds, matched, ref_segs = [], [], [], []
    refs, hyps, ns_hyps = [], [], []
    try:
        with torch.no_grad():
            for group, stamps in ((speech, True), (silent, False)):
                for i in range(0, len(group), batch_size):
                    part = group[i:i + batch_size]
                    x = torch.from_numpy(np.stack([logmel(s["audio"]) for s in part])).to(
                        device=device, dtype=dtype)
                    out = model.generate(x, return_timestamps=stamps, language=lang, task=task)
                    seqs = (out["sequences"] if isinstance(out, dict) else out).tolist()
                    for s, seq in zip(part, seqs):
                        if not stamps:
                            ns_hyps.append(tokenizer.decode(seq, skip_special_tokens=True).strip())
                            continue
                        pred = predicted_segments(seq, ts0, eot)
                        ref = [(round(g["start"] / STEP), round(g["end"] / STEP))
                               for g in s["meta"]["segments"] if not g.get("straddles")]
                        pairs = match(ref, [(a, b) for a, b, _ in pred])
                        step_err.append(sum(abs(ref[r][0] - pred[p][0])
                                            + abs(ref[r][1] - pred[p][1]) for r, p in pairs))
                        bounds.append(2 * len(pairs))
                        matched.append(len(pairs))
                        ref_segs.append(len(ref))
                        refs.append(" ".join(g["text"] for g in s["meta"]["segments"]
                                             if not g.get("straddles")))
                        hyps.append(tokenizer.decode([t for _, _, txt in pred for t in txt],
                                                     skip_special_tokens=True).strip())
    finally:
        model.train(was)
    out = {"kind": "windows", "n": len(speech) + len(silent), "speech_windows": len(speech),
           "no_speech_windows": len(silent), "alpha": alpha, "bootstrap": bootstrap,
           "seed": seed, "seconds": round(time.perf_counter() - t0, 3),
           "window_seconds": round(feature_extractor.n_samples / 16000, 3)}
    if speech:
        e, lo, hi = bootstrap_ci(step_err, bounds, bootstrap, seed, alpha)
        if not sum(bounds):  # nothing matched: no error to measure (not an error of 0)
            e = lo = hi = math.nan
        m, mlo, mhi = bootstrap_ci(matched, ref_segs, bootstrap, seed, alpha)
        out.update({
            "timestamp_error": e * STEP, "timestamp_error_lo": lo * STEP,
            "timestamp_error_hi": hi * STEP,
            "segments": int(sum(ref_segs)), "matched": int(sum(matched)),
            "matched_share": m, "matched_share_lo": mlo, "matched_share_hi": mhi,
            **_wer_entry(refs, hyps, lang, bootstrap, seed, alpha),
            "keys": [s["key"] for s in speech]})
    if silent:
        wrote = [int(bool(wer_normalize(h, lang).split())) for h in ns_hyps]
        r, rlo, rhi = bootstrap_ci(wrote, [1] * len(wrote), bootstrap, seed, alpha)
        kinds: dict[str, list[int]] = {}
        for s, w in zip(silent, wrote):
            kinds.setdefault(s["meta"]["window"]["no_speech"]["kind"], []).append(w)
        out.update({"hallucination_rate": r, "hallucination_rate_lo": rlo,
                    "hallucination_rate_hi": rhi,
                    "hallucination_by_kind": {k: {"n": len(v), "rate": sum(v) / len(v)}
                                              for k, v in sorted(kinds.items())},
                    "no_speech_keys": [s["key"] for s in silent], "no_speech_hyps": ns_hyps})
    return out
