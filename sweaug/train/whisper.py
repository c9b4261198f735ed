"""Whisper tokenizer and model helpers that also work fully offline.

``offline_tokenizer()`` rebuilds the multilingual Whisper tokenizer (whisper-small and friends:
99 languages, 51865 ids) from ``multilingual.tiktoken`` shipped in the ``openai-whisper`` wheel,
with openai-whisper's own split pattern and special tokens, so its ids equal openai-whisper's.
``tiny_whisper()`` builds a small randomly initialised ``WhisperForConditionalGeneration`` on the
real vocabulary for tests and smoke runs. Nothing here touches the Hugging Face Hub unless a real
model name is passed to ``load_tokenizer`` / ``load_model``.

torch and transformers are imported inside the functions: importing this module stays cheap.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

#: openai-whisper's pre-tokenizer regex (``whisper/tokenizer.py``, ``get_encoding``).
SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
NUM_LANGUAGES = 99  # multilingual checkpoints before large-v3 (which adds <|yue|>, 51866 ids)
OFFLINE_NAMES = ("tiny-random", "offline")
_FORMAT = "v1"  # bump when the saved tokenizer layout changes


def tiktoken_asset() -> Path:
    """Path of ``whisper/assets/multilingual.tiktoken`` without importing ``whisper`` (heavy)."""
    spec = importlib.util.find_spec("whisper")
    for base in (spec.submodule_search_locations or []) if spec else []:
        path = Path(base) / "assets" / "multilingual.tiktoken"
        if path.is_file():
            return path
    raise FileNotFoundError("multilingual.tiktoken not found: pip install --no-deps openai-whisper")


def language_codes(num_languages: int = NUM_LANGUAGES) -> list[str]:
    """Whisper's language codes in token order (``en``, ``zh``, ..., ``sv`` is the 15th)."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return list(LANGUAGES)[:num_languages]


def special_tokens(num_languages: int = NUM_LANGUAGES) -> list[str]:
    """openai-whisper's special tokens in id order; the first gets id 50257 (after the ranks)."""
    return ["<|endoftext|>", "<|startoftranscript|>",
            *[f"<|{code}|>" for code in language_codes(num_languages)],
            "<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
            "<|notimestamps|>", *[f"<|{i * 0.02:.2f}|>" for i in range(1501)]]


def _default_cache() -> Path:
    root = os.environ.get("SWEAUG_CACHE") or Path.home() / ".cache" / "sweaug"
    return Path(root).expanduser() / "whisper-tokenizer"


def _build_tokenizer(asset: Path):
    """Convert the tiktoken ranks into a ``tokenizers`` BPE and wrap it for Whisper."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    # As in the Hub's Whisper tokenizers, timestamps are added tokens but not "special": the
    # tokenizer finds them as ids > all_special_ids[-1] (decode_with_timestamps, offsets).
    specials, stamps = special_tokens()[:-1501], special_tokens()[-1501:]
    backend = TikTokenConverter(vocab_file=str(asset), pattern=SPLIT_PATTERN,
                                extra_special_tokens=specials).converted()
    backend.add_tokens([AddedToken(t, special=False, normalized=False) for t in stamps])
    eot = specials[0]
    tok = WhisperTokenizerFast(tokenizer_object=backend, bos_token=eot, eos_token=eot,
                               unk_token=eot, pad_token=eot, additional_special_tokens=specials[1:])
    last = tok.convert_tokens_to_ids(stamps[-1])
    if len(tok) != 51865 or tok.all_special_ids[-1] != 50363 or last != 51864:
        raise RuntimeError(f"unexpected Whisper vocabulary: {len(tok)} ids from {asset}")
    return tok


def offline_tokenizer(cache_dir: Path | None = None):
    """Multilingual Whisper tokenizer (same ids as openai-whisper / ``openai/whisper-small``).

    Built once from the ``openai-whisper`` wheel's ``multilingual.tiktoken`` (about a second),
    saved atomically as a ``save_pretrained`` folder under ``cache_dir`` (default
    ``$SWEAUG_CACHE/whisper-tokenizer``, else ``~/.cache/sweaug/whisper-tokenizer``) in a
    subfolder keyed by the asset's hash, and loaded from there afterwards. The pad token is
    ``<|endoftext|>``; use ``tok.set_prefix_tokens(language="swedish", task="transcribe")`` to
    get the ``<|startoftranscript|><|sv|><|transcribe|><|notimestamps|>`` prefix.
    """
    from transformers import WhisperTokenizerFast

    asset = tiktoken_asset()
    digest = hashlib.sha256(asset.read_bytes()).hexdigest()[:12]
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache()
    final = cache / f"multilingual-{NUM_LANGUAGES}-{digest}-{_FORMAT}"
    if (final / "tokenizer.json").is_file():
        try:
            return WhisperTokenizerFast.from_pretrained(str(final), local_files_only=True)
        except Exception:  # a damaged cache: rebuild below
            shutil.rmtree(final, ignore_errors=True)
    tok = _build_tokenizer(asset)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    try:
        tok.save_pretrained(str(tmp))
        os.replace(tmp, final)  # atomic; fails if another process won the race
    except OSError:
        if not (final / "tokenizer.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tok


def load_tokenizer(name_or_path: str, **kw):
    """``"tiny-random"``/``"offline"`` -> :func:`offline_tokenizer`; else ``from_pretrained``."""
    if name_or_path in OFFLINE_NAMES:
        return offline_tokenizer(kw.get("cache_dir"))
    from transformers import WhisperTokenizerFast

    return WhisperTokenizerFast.from_pretrained(name_or_path, **kw)


def tiny_whisper(seconds: float = 5.0, d_model: int = 128, layers: int = 2, heads: int = 4,
                 seed: int = 0, max_target_positions: int = 128, cache_dir: Path | None = None,
                 dropout: float = 0.0):
    """A small random ``WhisperForConditionalGeneration`` on the real multilingual vocabulary.

    Returns ``(model, feature_extractor, tokenizer)``. The encoder takes ``seconds`` of 16 kHz
    audio (``max_source_positions = 50 * seconds``; the feature extractor pads/trims to the same
    window), the generation config has what ``generate(language=..., task=...)`` needs, and
    ``torch.manual_seed(seed)`` makes two builds with the same arguments bit-identical.
    """
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    if seconds <= 0 or abs(50 * seconds - round(50 * seconds)) > 1e-9:
        raise ValueError(f"seconds must be a positive multiple of 0.02, got {seconds}")
    positions = round(50 * seconds)
    tok = offline_tokenizer(cache_dir)
    ids = tok.convert_tokens_to_ids
    eot, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=len(tok), num_mel_bins=80, d_model=d_model, encoder_layers=layers,
        decoder_layers=layers, encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model, decoder_ffn_dim=4 * d_model, max_source_positions=positions,
        max_target_positions=max_target_positions, pad_token_id=eot, bos_token_id=eot,
        eos_token_id=eot, decoder_start_token_id=sot, suppress_tokens=[], dropout=dropout,
        begin_suppress_tokens=[220, eot])
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config).eval()
    gen = model.generation_config
    gen.lang_to_id = {f"<|{c}|>": ids(f"<|{c}|>") for c in language_codes()}
    gen.task_to_id = {"translate": ids("<|translate|>"), "transcribe": ids("<|transcribe|>")}
    gen.no_timestamps_token_id = ids("<|notimestamps|>")
    gen.prev_sot_token_id = ids("<|startofprev|>")
    gen.is_multilingual = True
    gen.decoder_start_token_id, gen.forced_decoder_ids = sot, None
    gen.pad_token_id = gen.eos_token_id = gen.bos_token_id = eot
    gen.suppress_tokens, gen.begin_suppress_tokens = [], [220, eot]
    gen.max_initial_timestamp_index, gen.max_length = 50, max_target_positions
    gen._from_model_config = False  # else from_pretrained rebuilds it and drops the above
    chunk = int(seconds) if float(seconds).is_integer() else seconds
    fe = WhisperFeatureExtractor(feature_size=80, sampling_rate=16000, chunk_length=chunk)
    fe.n_samples = positions * 320  # 2 mel frames of 160 samples per encoder position
    fe.nb_max_frames = positions * 2
    return model, fe, tok


def tiny_teacher(clips: list[tuple], folder: Path, seconds: float = 6.0, steps: int = 260,
                 seed: int = 0, language: str = "sv") -> Path:
    """A tiny Whisper (d_model 64, one layer) overfitted on ``clips`` — ``(mono 16 kHz float32
    audio, transcript)`` pairs — until it writes their transcripts, saved to ``folder`` like any
    checkpoint (model, feature extractor, tokenizer): the offline stand-in for a real teacher in
    ``sweaug label``'s tests and benchmark (about 30 s on a CPU for 40 clips)."""
    import numpy as np
    import torch

    from .evaluate import label_ids
    from .features import LogMel

    model, fe, tok = tiny_whisper(seconds=seconds, seed=seed, d_model=64, layers=1, heads=2)
    logmel = LogMel(fe)
    x = torch.from_numpy(np.stack([logmel(a) for a, _ in clips]))
    labels = [label_ids(tok, t, language) for _, t in clips]
    width = max(map(len, labels)) - 1
    eot = tok.convert_tokens_to_ids("<|endoftext|>")
    dec = torch.full((len(labels), width), eot)
    tgt = torch.full((len(labels), width), -100)
    for i, l in enumerate(labels):
        dec[i, :len(l) - 1], tgt[i, :len(l) - 1] = torch.tensor(l[:-1]), torch.tensor(l[1:])
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        idx = torch.randperm(len(labels))[:16]
        logits = model(input_features=x[idx], decoder_input_ids=dec[idx]).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 tgt[idx].reshape(-1), ignore_index=-100)
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for part in (model, fe, tok):
        part.save_pretrained(str(folder))
    return Path(folder)


def load_model(name_or_path: str, **kw):
    """``"tiny-random"`` -> :func:`tiny_whisper` (``kw`` passed on, returns the model only);
    anything else -> ``WhisperForConditionalGeneration.from_pretrained(name_or_path, **kw)``."""
    if name_or_path == "tiny-random":
        return tiny_whisper(**kw)[0]
    from transformers import WhisperForConditionalGeneration

    return WhisperForConditionalGeneration.from_pretrained(name_or_path, **kw)
