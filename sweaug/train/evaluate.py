"""Evaluation for ``sweaug ablate``: teacher-forced loss, WER (orthographic and normalized) with
bootstrap confidence intervals, paired comparisons between systems, and a guard against
evaluating Whisper without forcing the language and task.

Why the guard: a multilingual Whisper left to detect the language per clip transcribes some
Swedish clips as another language (or translates them), which is how the seed's "tutorial" run
reported a 98 % WER; transformers >= 4.38 also refuses a batch in which it detects several
languages ("Multiple languages detected", transformers#28814). Every ``generate`` call here
passes ``language`` and ``task`` (:func:`generate_kwargs`), and :func:`check_generation_config`
refuses a model whose generation config cannot honour them.

WER definitions: errors = substitutions + deletions + insertions of a word-level Levenshtein
alignment (jiwer); corpus WER = sum(errors) / sum(reference words) over utterances (not a mean
of per-utterance WERs). *Orthographic* WER compares the texts as stored (case, punctuation);
*normalized* WER applies :func:`wer_normalize` — :func:`sweaug.build.text.normalized_text`, the
function that writes every sample's ``text_normalized`` — to reference and hypothesis alike:
lowercase, numbers as words (num2words: "3" and "tre" are the same word), punctuation and
symbols to spaces, ``[...]``/``<...>`` and annotation-only ``(...)`` removed, å/ä/ö kept. So the
reference side is exactly the sample's ``text_normalized``, and a hypothesis that writes a
number in digits is not counted wrong. (Whisper's ``BasicTextNormalizer``, which left digits as
digits, is :func:`basic_normalize`; it is no longer used for WER.) An evaluation records
``normalizer`` (:data:`NORMALIZER`), so figures from another normalizer can be told apart
(:func:`normalized_scores` recomputes them from the stored transcripts).

A WER over no reference words with errors is *undefined*: NaN, never ``inf``
(:func:`corpus_wer`, :func:`bootstrap_ci`, :func:`paired_bootstrap_diff`).

torch and transformers are imported inside the functions: importing this module stays cheap.
"""
from __future__ import annotations

import logging
import math
import re
import time
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..records import ConfigError


class EvaluationError(ConfigError):
    """Evaluation refused (a model that cannot be forced to the language/task, bad input)."""


class _QuietGenerate:
    """Drops two warnings that transformers logs on *every* Whisper ``generate`` batch here,
    both about its own internals, not about anything the caller can change: "Both
    `max_new_tokens` and `max_length` seem to have been set" (the checkpoint's generation config
    carries ``max_length``; ``max_new_tokens`` wins, as intended) and "Passing
    `generation_config` together with generation-related arguments" (Whisper's own generate
    passes its suppress tokens that way). Also "The attention mask is not set": Whisper's
    inputs are fixed-size log-mel windows, which need no mask. Every other message passes."""

    _DROP = ("seem to have been set. `max_new_tokens` will take precedence",
             "together with generation-related arguments",
             "The attention mask is not set with a batched input")

    def filter(self, record) -> bool:
        msg = record.getMessage()
        return not any(d in msg for d in self._DROP)


def _quiet_generate_logs() -> None:
    import logging

    for name in ("transformers.generation.utils",
                 "transformers.models.whisper.generation_whisper"):
        lg = logging.getLogger(name)
        if not any(isinstance(f, _QuietGenerate) for f in lg.filters):
            lg.addFilter(_QuietGenerate())


# ---------------------------------------------------------------- settings

PROMPT_TOKENS = 4  # <|startoftranscript|><|sv|><|transcribe|><|notimestamps|>


def eval_settings(recipe, mix, model) -> dict:
    """``{"batch_size", "max_new_tokens"}`` of a model's evaluation under an ablation recipe
    (``sweaug.ablate.recipe.Recipe``; ``mix`` one of its mixes, None for the baseline): ``evaluation.batch_size``
    when the recipe sets it, else the mix's ``per_device_eval_batch_size`` (the baseline: the
    first mix's); ``evaluation.max_new_tokens`` when set, else ``generation_max_length`` — like
    transformers' Seq2SeqTrainer, a total decoder length with the 4 prompt tokens — both at
    most what the model's ``max_target_positions`` allows."""
    t = (mix or recipe.mixes[0]).training
    room = int(model.config.max_target_positions) - PROMPT_TOKENS
    if recipe.max_new_tokens is not None:
        new = recipe.max_new_tokens
    else:
        new = int(t["generation_max_length"]) - PROMPT_TOKENS
        if new > room:
            # logged as the ablation's (where this setting was decided before it moved here)
            logging.getLogger("sweaug.ablate").info(
                "generation_max_length %s is more than the model's max_target_positions (%s): "
                "generating up to %d new tokens", t["generation_max_length"],
                model.config.max_target_positions, room)
            new = room
    return {"batch_size": int(recipe.eval_batch_size or t["per_device_eval_batch_size"]),
            "max_new_tokens": max(1, new)}


# ---------------------------------------------------------------- normalization


def basic_normalize(text: str) -> str:
    """Whisper's ``BasicTextNormalizer()`` — transformers' copy of openai-whisper's, with
    ``remove_diacritics=False`` and no letter splitting — plus stripping the leading/trailing
    space it leaves: ``"Åsa går hem."`` -> ``"åsa går hem"``.

    Lowercase; drop ``[...]``/``<...>`` and ``(...)`` spans; marks, symbols and punctuation become
    spaces (NFKC first, so å/ä/ö are kept whether composed or decomposed); collapse whitespace.
    Whitespace does not change word-level WER, so the strip does not change any WER. Not used
    for the reported WER (see the module's docstring); kept to compare with figures made with it.
    """
    from transformers.models.whisper.english_normalizer import BasicTextNormalizer

    return BasicTextNormalizer()(text).strip()


def _normalizer_id() -> str:
    from ..build.text import NORMALIZER_VERSION

    # the id names the function where it lived when the id was made (sweaug/text.py, now
    # build/text.py): stored results keep comparing equal
    return f"sweaug.text.normalized_text/{NORMALIZER_VERSION}"


#: What ``evaluate_set`` records as ``normalizer``: the function and its version.
NORMALIZER = _normalizer_id()


def wer_normalize(text: str, language: str = "sv") -> str:
    """The normalized-WER form of a reference or hypothesis: :func:`sweaug.build.text.normalized_text`
    (for a reference, its sample's ``text_normalized``): ``"Klockan är 3."`` and
    ``"klockan är tre"`` -> ``"klockan är tre"``. ``language``: a code such as ``"sv"`` (num2words'
    language; the digits stay digits for one it does not know)."""
    from ..build.text import normalized_text

    return normalized_text(text, language)


# ---------------------------------------------------------------- WER


def wer_stats(refs: Sequence[str], hyps: Sequence[str]) -> tuple[list[int], list[int]]:
    """Per-utterance ``(errors, reference_words)`` from one ``jiwer.process_words`` alignment.

    ``errors[i]`` = S + D + I of utterance i, so ``sum(errors) / sum(words)`` equals
    ``jiwer.wer(refs, hyps)``. An empty (or blank) reference counts 0 words and its hypothesis
    words as insertions.
    """
    import jiwer

    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    if not refs:
        return [], []
    out = jiwer.process_words(list(refs), list(hyps))
    errors, words = [], []
    for ref_words, chunks in zip(out.references, out.alignments):
        e = 0
        for c in chunks:
            if c.type in ("substitute", "delete"):
                e += c.ref_end_idx - c.ref_start_idx
            elif c.type == "insert":
                e += c.hyp_end_idx - c.hyp_start_idx
        errors.append(e)
        words.append(len(ref_words))
    return errors, words


def corpus_wer(errors, words) -> float:
    """sum(errors) / sum(words); 0.0 for no words and no errors; NaN (undefined) for errors on
    no reference words."""
    e, w = int(np.sum(errors)), int(np.sum(words))
    if w == 0:
        return 0.0 if e == 0 else math.nan
    return e / w


def _ratios(e: np.ndarray, w: np.ndarray) -> np.ndarray:
    """e / w elementwise: 0.0 where both are 0, NaN (undefined) where only w is; no warning."""
    r = np.full(e.shape, math.nan)
    np.divide(e, w, out=r, where=w > 0)
    r[(w == 0) & (e == 0)] = 0.0
    return r


def _interval(r: np.ndarray, alpha: float) -> tuple[float, float]:
    """The percentile ``1 - alpha`` interval of the defined (non-NaN) resampled values; NaN,
    NaN when none is defined."""
    r = r[~np.isnan(r)]
    if not r.size:
        return math.nan, math.nan
    lo, hi = np.percentile(r, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    return float(lo), float(hi)


def _resample_sums(arrays: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """Sums of each array over ``n`` resamples of the utterance indices (with replacement); the
    same indices for every array (paired). The chunking depends only on the sizes, so the result
    is a function of (arrays, n, seed)."""
    size = len(arrays[0])
    if size == 0:
        raise ValueError("cannot bootstrap an empty set")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng(seed)
    sums = [np.empty(n, dtype=np.int64) for _ in arrays]
    chunk = max(1, 4_000_000 // size)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        idx = rng.integers(0, size, size=(m, size))
        for a, s in zip(arrays, sums):
            s[start:start + m] = a[idx].sum(axis=1)
    return sums


def _as_counts(x, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.int64)
    if a.ndim != 1 or (a < 0).any():
        raise ValueError(f"{name} must be a 1-D sequence of non-negative counts")
    return a


def bootstrap_ci(errors, words, n: int = 1000, seed: int = 0,
                 alpha: float = 0.05) -> tuple[float, float, float]:
    """``(wer, lo, hi)``: corpus WER and its percentile bootstrap ``1 - alpha`` interval over
    ``n`` resamples of utterances with replacement (``numpy.random.default_rng(seed)``).

    Errors on no reference words have no WER: ``(nan, nan, nan)``, without a warning. A
    resample that draws only word-less utterances with errors is undefined too and left out
    of the interval (the interval is conditional on a defined WER)."""
    e, w = _as_counts(errors, "errors"), _as_counts(words, "words")
    if e.shape != w.shape:
        raise ValueError("errors and words differ in length")
    se, sw = _resample_sums([e, w], n, seed)
    wer = corpus_wer(e, w)
    if math.isnan(wer):
        return wer, math.nan, math.nan
    lo, hi = _interval(_ratios(se.astype(float), sw.astype(float)), alpha)
    return wer, lo, hi


def paired_bootstrap_diff(errors_a, words, errors_b, n: int = 1000, seed: int = 0,
                          alpha: float = 0.05) -> tuple[float, float, float, float]:
    """Paired bootstrap of ``WER_b - WER_a`` on the same utterances (same references, so the
    same ``words``): each resample draws one set of utterance indices used for both systems.

    Returns ``(diff, lo, hi, p_better)``: the observed difference, its percentile ``1 - alpha``
    interval, and the share of resamples in which b has the lower WER. The difference is
    significant when the interval excludes 0 (:func:`verdict`).

    When either WER is undefined (errors on no reference words) the difference is too:
    ``(nan, nan, nan, nan)``, without a warning; resamples in which it is undefined are left
    out of the interval and of ``p_better``.
    """
    a, b = _as_counts(errors_a, "errors_a"), _as_counts(errors_b, "errors_b")
    w = _as_counts(words, "words")
    if not (a.shape == b.shape == w.shape):
        raise ValueError("errors_a, words and errors_b must have the same length (paired)")
    sa, sb, sw = _resample_sums([a, b, w], n, seed)
    diff = corpus_wer(b, w) - corpus_wer(a, w)
    if math.isnan(diff):
        return math.nan, math.nan, math.nan, math.nan
    wf = sw.astype(float)
    d = _ratios(sb.astype(float), wf) - _ratios(sa.astype(float), wf)
    lo, hi = _interval(d, alpha)
    defined = d[~np.isnan(d)]
    return diff, lo, hi, float(np.mean(defined < 0)) if defined.size else math.nan


def verdict(lo: float, hi: float) -> str:
    """For a CI of ``WER_b - WER_a``: "better" (b lower, CI below 0), "worse", or
    "no significant difference" (the CI contains 0, or is undefined)."""
    if hi < 0:
        return "better"
    if lo > 0:
        return "worse"
    return "no significant difference"


# ---------------------------------------------------------------- language/task guard


def language_token(language: str) -> str:
    """``"sv"``, ``"swedish"`` or ``"<|sv|>"`` -> ``"<|sv|>"`` (Whisper's language codes)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES, TO_LANGUAGE_CODE

    lang = str(language).strip().lower()
    m = re.fullmatch(r"<\|(.+)\|>", lang)
    code = m.group(1) if m else TO_LANGUAGE_CODE.get(lang, lang)
    if code not in LANGUAGES:
        raise EvaluationError(f"unknown Whisper language {language!r} (use a code such as 'sv' "
                              f"or a name such as 'swedish')")
    return f"<|{code}|>"


def check_generation_config(model, language: str = "sv", task: str = "transcribe") -> dict:
    """Refuse (:class:`EvaluationError`) a model whose generation config cannot force
    ``language`` and ``task``; else return ``{"language_token", "language_id", "task_id"}``.

    Required: ``is_multilingual`` true, ``lang_to_id`` containing the language token,
    ``task_to_id`` containing the task, ``decoder_start_token_id`` set. Without them
    ``generate`` falls back to language detection (or fails), and the WER says nothing about
    Swedish transcription.
    """
    name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
    how = ("copy generation_config.json from the matching openai/whisper-* checkpoint, or set "
           "lang_to_id, task_to_id and is_multilingual=True on model.generation_config")
    gen = getattr(model, "generation_config", None)
    if gen is None:
        raise EvaluationError(f"refusing to report WER for {name}: it has no generation config, "
                              f"so language and task cannot be forced ({how})")
    if task not in ("transcribe", "translate"):
        raise EvaluationError(f"unknown Whisper task {task!r} (transcribe or translate)")
    token = language_token(language)
    if not getattr(gen, "is_multilingual", False):
        raise EvaluationError(
            f"refusing to report WER for {name}: its generation config is not multilingual "
            f"(is_multilingual is {getattr(gen, 'is_multilingual', 'missing')}), so language "
            f"{token} and task {task!r} cannot be forced ({how})")
    lang_to_id = getattr(gen, "lang_to_id", None)
    if not lang_to_id:
        raise EvaluationError(
            f"refusing to report WER for {name}: its generation config has no lang_to_id, so "
            f"generate() cannot force language {token} and would detect the language per clip "
            f"(the seed's 98 % WER; transformers#28814) ({how})")
    if token not in lang_to_id:
        raise EvaluationError(f"refusing to report WER for {name}: {token} is not in its "
                              f"generation config's lang_to_id ({len(lang_to_id)} languages)")
    task_to_id = getattr(gen, "task_to_id", None)
    if not task_to_id or task not in task_to_id:
        raise EvaluationError(
            f"refusing to report WER for {name}: its generation config's task_to_id "
            f"{'is missing' if not task_to_id else 'has no ' + repr(task)}, so task {task!r} "
            f"cannot be forced ({how})")
    if getattr(gen, "decoder_start_token_id", None) is None:
        raise EvaluationError(f"refusing to report WER for {name}: generation config has no "
                              f"decoder_start_token_id")
    vocab = getattr(getattr(model, "config", None), "vocab_size", None)
    ids = {"language_token": token, "language_id": int(lang_to_id[token]),
           "task_id": int(task_to_id[task])}
    if vocab is not None and not (ids["language_id"] < vocab and ids["task_id"] < vocab):
        raise EvaluationError(f"refusing to report WER for {name}: language/task ids "
                              f"{ids['language_id']}/{ids['task_id']} outside its vocabulary")
    return ids


def generate_kwargs(model, language: str = "sv", task: str = "transcribe") -> dict:
    """The ``generate`` keyword arguments that force ``language`` and ``task`` (after
    :func:`check_generation_config`): ``{"language": "sv", "task": "transcribe"}``."""
    ids = check_generation_config(model, language, task)
    return {"language": ids["language_token"][2:-2], "task": task}


# ---------------------------------------------------------------- evaluation


def label_ids(tokenizer, text: str, language: str = "sv", task: str = "transcribe") -> list[int]:
    """``<|startoftranscript|><|sv|><|transcribe|><|notimestamps|> text <|endoftext|>`` ids —
    what a tokenizer with ``set_prefix_tokens(language, task)`` returns (the training labels of
    ``ShardStream``), built without mutating ``tokenizer``."""
    ids = tokenizer.convert_tokens_to_ids
    prefix = [ids("<|startoftranscript|>"), ids(language_token(language)), ids(f"<|{task}|>"),
              ids("<|notimestamps|>")]
    body = tokenizer(text, add_special_tokens=False).input_ids
    return prefix + list(body) + [ids("<|endoftext|>")]


def shard_samples(shards: Iterable, text_field: str = "text") -> Iterator[dict]:
    """``{"key", "audio", "text"}`` samples of WebDataset shards, in shard order (for
    :func:`evaluate_set`); a truncated shard or an incomplete sample raises
    :class:`~sweaug.build.shards.ShardReadError` naming the shard and the member."""
    from pathlib import Path

    from ..build.shards import iter_samples
    from .data import decode_flac
    from .samples import check_members, sample_meta

    for shard in shards:
        for key, files in iter_samples(Path(shard)):
            check_members(shard, key, files)
            meta = sample_meta(shard, key, files, (text_field,))
            yield {"key": key, "audio": decode_flac(files["flac"]), "text": meta[text_field]}


def _batches(samples: Iterable[dict], size: int, cap: int | None, state: dict,
             sort_window: int = 1):
    """``(positions, batch)`` pairs: lists of at most ``size`` samples, at most ``cap`` samples
    in all; sets ``state["capped"]`` when a sample beyond the cap exists (one extra sample is
    read). With ``sort_window`` > 1, up to that many consecutive samples are read, ordered by
    audio length (longest first, ties in stream order) and cut into batches, so a batch holds
    clips of similar length: its decoder pass and ``generate`` run as long as its longest
    transcript, not the set's. ``positions`` are the samples' indices in the stream, for the
    caller to put the results back in stream order (the set, the cap and every score stay those
    of the unsorted stream)."""
    window: list[tuple[int, dict]] = []

    def flush():
        if sort_window > 1:
            window.sort(key=lambda p: (-np.asarray(p[1]["audio"]).size, p[0]))
        for i in range(0, len(window), size):
            part = window[i:i + size]
            yield [p[0] for p in part], [p[1] for p in part]
        window.clear()

    for i, s in enumerate(samples):
        if cap is not None and i >= cap:
            state["capped"] = True
            break
        window.append((i, s))
        if len(window) >= max(size, sort_window):
            yield from flush()
    if window:
        yield from flush()


def evaluate_set(model, tokenizer, feature_extractor, samples: Iterable[dict],
                 language: str = "sv", task: str = "transcribe", batch_size: int = 8,
                 max_samples: int | None = None, max_new_tokens: int | None = None,
                 bootstrap: int = 1000, seed: int = 0, alpha: float = 0.05,
                 total: int | None = None, sort_window: int | None = None) -> dict:
    """Evaluate ``model`` on ``samples`` (dicts with ``key``, ``audio`` — mono float32 at 16 kHz
    — and ``text``; at most ``max_samples`` of them, in order).

    Per batch: log-mel features (``LogMel``; clips longer than the model's window are cut,
    counted in ``truncated_audio``), the encoder once, a teacher-forced decoder pass on the
    labels of :func:`label_ids` (cross-entropy summed over every predicted token — language,
    task, notimestamps, text, end of text — and divided by the token count of the whole set;
    for a model whose ``generation_config.suppress_tokens`` forbids tokens, a softmax over the
    others, and reference tokens among them are left out and counted in
    ``unreachable_tokens``),
    and ``generate(..., language=, task=)`` on the same encoder output (greedy), decoded with
    ``skip_special_tokens=True``. The model runs on its own device, in eval mode, under
    ``torch.no_grad``; its training mode is restored afterwards.

    Batches are made of clips of similar length (:func:`_batches`): ``sort_window`` consecutive
    samples (default ``16 x batch_size``; 1 turns sorting off) are ordered by duration before
    they are cut into batches, and every per-clip result is put back in stream order.

    ``bootstrap`` resamples (seeded with ``seed``) give the ``1 - alpha`` intervals; ``total``
    (optional) is the size of the whole set, recorded as ``n_total`` for the report (and fewer
    evaluated samples than ``total`` count as capped, e.g. when ``samples`` was cut already).

    Returns a JSON-serializable dict: ``n``, ``capped`` (samples left out), ``n_total`` (None
    when capped without ``total``), ``keys``, ``refs``, ``hyps``, ``eval_loss``, ``tokens``,
    ``wer``/``wer_lo``/``wer_hi``
    (orthographic), ``nwer``/``nwer_lo``/``nwer_hi`` (normalized), per-utterance ``errors``,
    ``words``, ``nerrors``, ``nwords`` (for paired comparisons), and bookkeeping: how it ran
    (``device``, ``dtype``, ``batch_size``, ``sort_window``, ``window_seconds``), the clips
    longer than that window (``truncated_audio``: their audio is cut, their transcript kept),
    ``seconds`` and ``clips_per_second``.
    """
    import torch

    from .features import LogMel

    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples must be >= 1 or None, got {max_samples}")
    if sort_window is None:
        sort_window = 16 * batch_size
    if sort_window < 1:
        raise ValueError(f"sort_window must be >= 1, got {sort_window}")
    ids = check_generation_config(model, language, task)  # refuses before any audio is read
    _quiet_generate_logs()
    gen_kw = {"language": ids["language_token"][2:-2], "task": task}  # = generate_kwargs()
    prefix = label_ids(tokenizer, "", language, task)[:-1]
    gen = model.generation_config
    if prefix != [gen.decoder_start_token_id, ids["language_id"], ids["task_id"],
                  getattr(gen, "no_timestamps_token_id", prefix[3])]:
        raise EvaluationError(f"the tokenizer's prefix ids {prefix} do not match the model's "
                              f"generation config: tokenizer and model are from different "
                              f"vocabularies")
    # tokens generate never emits (a model trained with `vocabulary: transcripts`): the loss
    # is that of the model as it decodes, a softmax over the others
    suppress = torch.tensor(sorted(set(gen.suppress_tokens or [])), dtype=torch.long)
    max_pos = int(model.config.max_target_positions)
    if max_new_tokens is None:
        max_new_tokens = max_pos - len(prefix)
    if not 1 <= max_new_tokens <= max_pos - len(prefix):
        raise ValueError(f"max_new_tokens must be in [1, {max_pos - len(prefix)}] "
                         f"(max_target_positions {max_pos} minus the {len(prefix)} prefix "
                         f"tokens), got {max_new_tokens}")
    logmel = LogMel(feature_extractor)
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    device = next(model.parameters()).device
    dtype = next(model.parameters()).dtype

    done: dict[int, tuple[str, str, str]] = {}  # stream position -> (key, ref, hyp)
    loss_sum, tokens, trunc_audio, trunc_labels, audio_seconds = 0.0, 0, 0, 0, 0.0
    unreachable = 0
    state = {"capped": False}
    was_training = model.training
    model.eval()
    t0 = time.perf_counter()
    try:
        with torch.no_grad():
            for pos, batch in _batches(samples, batch_size, max_samples, state, sort_window):
                feats = []
                for s in batch:
                    if s.get("sample_rate", 16000) != 16000:
                        raise EvaluationError(f"sample {s.get('key')!r}: expected 16 kHz audio, "
                                              f"got {s['sample_rate']} Hz")
                    audio = np.asarray(s["audio"], dtype=np.float32)
                    if audio.ndim != 1:
                        raise EvaluationError(f"sample {s.get('key')!r}: expected mono audio, "
                                              f"got shape {audio.shape}")
                    trunc_audio += audio.size > logmel.n_samples
                    audio_seconds += audio.size / 16000
                    feats.append(logmel(audio))
                x = torch.from_numpy(np.stack(feats)).to(device=device, dtype=dtype)
                enc = model.get_encoder()(x)

                labels = [label_ids(tokenizer, s["text"], language, task) for s in batch]
                trunc_labels += sum(len(l) > max_pos + 1 for l in labels)
                labels = [l[:max_pos + 1] for l in labels]
                width = max(len(l) for l in labels) - 1
                dec = torch.full((len(batch), width), eot, dtype=torch.long)
                tgt = torch.full((len(batch), width), -100, dtype=torch.long)
                for i, l in enumerate(labels):
                    dec[i, :len(l) - 1] = torch.tensor(l[:-1])
                    tgt[i, :len(l) - 1] = torch.tensor(l[1:])
                logits = model(encoder_outputs=enc, decoder_input_ids=dec.to(device)).logits
                if len(suppress):
                    logits[..., suppress.to(device)] = -math.inf
                    # a reference token the model cannot emit: counted, not an infinite loss
                    out_of_vocab = torch.isin(tgt, suppress)
                    unreachable += int(out_of_vocab.sum())
                    tgt[out_of_vocab] = -100
                loss_sum += torch.nn.functional.cross_entropy(
                    logits.float().reshape(-1, logits.shape[-1]), tgt.to(device).reshape(-1),
                    ignore_index=-100, reduction="sum").item()
                tokens += int((tgt != -100).sum())

                out = model.generate(x, encoder_outputs=enc, max_new_tokens=max_new_tokens,
                                     **gen_kw)
                seqs = out.sequences if hasattr(out, "sequences") else out
                texts = tokenizer.batch_decode(seqs, skip_special_tokens=True)
                for p, s, h in zip(pos, batch, texts):
                    done[p] = (str(s.get("key", p)), s["text"], h.strip())
    finally:
        model.train(was_training)
    seconds = time.perf_counter() - t0
    order = sorted(done)
    keys = [done[p][0] for p in order]
    refs = [done[p][1] for p in order]
    hyps = [done[p][2] for p in order]
    if not refs:
        raise EvaluationError("no samples to evaluate")

    errors, words = wer_stats(refs, hyps)
    wer, wer_lo, wer_hi = bootstrap_ci(errors, words, bootstrap, seed, alpha)
    normalized = normalized_scores(refs, hyps, gen_kw["language"], bootstrap, seed, alpha)
    return {
        "n": len(refs), "max_samples": max_samples,
        # capped: a sample beyond max_samples was seen, or fewer than `total` were evaluated
        "capped": state["capped"] or (total is not None and len(refs) < total),
        "n_total": int(total) if total is not None else (None if state["capped"] else len(refs)),
        "language": gen_kw["language"], "task": task,
        "eval_loss": loss_sum / tokens if tokens else math.nan, "tokens": tokens,
        "unreachable_tokens": unreachable,
        "wer": wer, "wer_lo": wer_lo, "wer_hi": wer_hi,
        **normalized,
        "alpha": alpha, "bootstrap": bootstrap, "seed": seed,
        "keys": keys, "refs": refs, "hyps": hyps,
        "errors": errors, "words": words,
        "truncated_audio": int(trunc_audio), "truncated_labels": int(trunc_labels),
        "audio_seconds": round(audio_seconds, 3), "max_new_tokens": max_new_tokens,
        "device": str(device), "dtype": str(dtype).replace("torch.", ""),
        "batch_size": batch_size, "sort_window": sort_window,
        "window_seconds": round(logmel.n_samples / 16000, 3),
        "seconds": round(seconds, 3),
        "clips_per_second": round(len(refs) / seconds, 3) if seconds > 0 else None,
    }


def normalized_scores(refs: Sequence[str], hyps: Sequence[str], language: str = "sv",
                      bootstrap: int = 1000, seed: int = 0, alpha: float = 0.05) -> dict:
    """The normalized-WER part of an evaluation entry, from its transcripts: ``nwer``,
    ``nwer_lo``, ``nwer_hi``, per-utterance ``nerrors``/``nwords`` (:func:`wer_normalize` on
    both sides) and ``normalizer`` (:data:`NORMALIZER`). ``sweaug report`` recomputes an
    entry evaluated under another normalizer with it (its ``refs``/``hyps`` are stored)."""
    nerrors, nwords = wer_stats([wer_normalize(r, language) for r in refs],
                                [wer_normalize(h, language) for h in hyps])
    nwer, nwer_lo, nwer_hi = bootstrap_ci(nerrors, nwords, bootstrap, seed, alpha)
    return {"nwer": nwer, "nwer_lo": nwer_lo, "nwer_hi": nwer_hi, "nerrors": nerrors,
            "nwords": nwords, "normalizer": _normalizer_id()}
