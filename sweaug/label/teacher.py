"""A Whisper teacher: any checkpoint (a Hub id such as ``KBLab/kb-whisper-large``, or a folder
written by ``save_pretrained``) that transcribes clips with the language and task forced.

Decoding is deterministic and recorded (:meth:`Teacher.settings`, hashed into every job's
input): greedy (``num_beams=1``, no sampling), no timestamps, a token budget of
:data:`TOKENS_PER_SECOND` per second of the batch's longest clip (at most the decoder's
positions), fp16 or bf16 on CUDA (bf16 where the GPU has it: an A100/H100; fp16 on a T4), fp32
on a CPU. A batch holds clips of similar duration (the caller sorts them): Whisper pads every
clip to its window, so the encoder costs the same for any clip, and ``generate`` runs as long as
the batch's longest transcript.

On the same encoder pass, Whisper's own language detection (one decoder step after
``<|startoftranscript|>``, a softmax over the language tokens — what openai-whisper's
``detect_language`` and transformers' ``WhisperGenerationMixin.detect_language`` do) gives the
language the teacher hears, for the ``teacher_language`` check.

torch and transformers are imported inside the functions.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from ..records import ConfigError

TOKENS_PER_SECOND = 15  # Whisper's own budget (448 tokens per 30 s); stops a loop early
MIN_TOKENS = 16


@dataclass(frozen=True)
class TeacherSpec:
    """What a job needs to load and run a teacher the same way anywhere (picklable for Ray)."""

    name: str
    location: str  # a folder, or the Hub id
    revision: str  # a folder's fingerprint (sha256 of its files), the cache snapshot or Hub sha
    device: str  # "cpu" or "cuda"
    dtype: str  # float32 / float16 / bfloat16
    batch_size: int
    language: str
    task: str

    def settings(self) -> dict:
        """The recorded decoding settings (the manifest's and every sample's ``teacher``)."""
        return {"model": self.name, "revision": self.revision, "device": self.device,
                "dtype": self.dtype, "batch_size": self.batch_size, "language": self.language,
                "task": self.task, "decoding": "greedy", "num_beams": 1, "do_sample": False,
                "timestamps": False,
                "max_new_tokens": f"{TOKENS_PER_SECOND} per second of the longest clip of a "
                                  f"batch, at least {MIN_TOKENS}"}

    @property
    def sha256(self) -> str:
        # the batch size is in it: batch composition can change fp16/bf16 results by a token
        return hashlib.sha256(json.dumps(self.settings(), sort_keys=True).encode()).hexdigest()


def _fingerprint(folder: Path) -> str:
    """sha256 over a model folder's files (names and bytes): a folder trained again is another
    teacher, and a resumed run must not mix its labels with the old one's."""
    from ..files import sha256_file

    h = hashlib.sha256()
    for p in sorted(q for q in folder.rglob("*") if q.is_file()):
        h.update(f"{p.relative_to(folder).as_posix()}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def resolve_teacher(name: str, device: str = "auto", dtype: str = "auto", batch_size: int = 16,
                    language: str = "sv", task: str = "transcribe") -> TeacherSpec:
    """Check, before any job, that the teacher can be loaded here and forced to ``language`` and
    ``task`` (:func:`~sweaug.train.pretrained.resolve`, :func:`~sweaug.train.evaluate.check_generation_config`
    on its generation config); choose device and dtype."""
    import torch

    from ..train.evaluate import check_generation_config, language_token
    from ..train.pretrained import TINY, ModelError, load_kwargs, resolve

    if name == TINY:
        raise ConfigError("--teacher tiny-random: a random model's transcripts are not labels; "
                          "give a Hub id (KBLab/kb-whisper-large) or a model folder")
    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    src = resolve(name)
    from transformers import GenerationConfig, WhisperConfig

    try:
        gen = GenerationConfig.from_pretrained(name, **load_kwargs(name))
        cfg = WhisperConfig.from_pretrained(name, **load_kwargs(name))
    except Exception as e:
        raise ModelError(f"teacher {name}: cannot read its generation config "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:160]})") from None

    class _Probe:  # what check_generation_config reads of a model
        generation_config, config = gen, cfg

    check_generation_config(_Probe(), language, task)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device here (torch.cuda.is_available() is "
                          "False)")
    if dtype == "auto":
        dtype = ("bfloat16" if torch.cuda.is_bf16_supported() else "float16") \
            if device == "cuda" else "float32"
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ConfigError(f"--dtype must be auto, float32, float16 or bfloat16, got {dtype!r}")
    if device == "cpu" and dtype == "float16":
        raise ConfigError("--dtype float16 on a CPU: half-precision matmuls there are slow or "
                          "missing; use float32 (or bfloat16)")
    revision = _fingerprint(Path(src.location)) if src.kind == "folder" else (src.revision or "")
    return TeacherSpec(name, src.location, revision, device, dtype, batch_size,
                       language_token(language)[2:-2], task)


class Teacher:
    """A loaded teacher (:meth:`load` keeps the last two per process — the teacher and a
    ``--teacher2`` — so that a job per shard, which runs both, loads neither per shard)."""

    _loaded: dict[str, "Teacher"] = {}

    def __init__(self, spec: TeacherSpec):
        import torch
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        from ..train.evaluate import check_generation_config, _quiet_generate_logs
        from ..train.features import LogMel
        from ..train.pretrained import load_kwargs

        self.spec = spec
        kw = load_kwargs(spec.name)
        proc = WhisperProcessor.from_pretrained(spec.name, **kw)
        self.model = WhisperForConditionalGeneration.from_pretrained(
            spec.name, dtype=getattr(torch, spec.dtype), **kw).to(spec.device).eval()
        self.tokenizer = proc.tokenizer
        self.logmel = LogMel(proc.feature_extractor)
        ids = check_generation_config(self.model, spec.language, spec.task)
        gen = self.model.generation_config
        gen.forced_decoder_ids = None
        self.model.config.forced_decoder_ids = None
        self.sot = int(gen.decoder_start_token_id)
        langs = sorted(gen.lang_to_id.items(), key=lambda kv: kv[1])
        self.lang_codes = [k[2:-2] for k, _ in langs]
        self.lang_ids = [int(v) for _, v in langs]
        self.language_id = ids["language_id"]
        self.eot = self.tokenizer.convert_tokens_to_ids("<|endoftext|>")
        self.room = int(self.model.config.max_target_positions) - 4
        _quiet_generate_logs()

    @classmethod
    def load(cls, spec: TeacherSpec) -> "Teacher":
        t = cls._loaded.pop(spec.sha256, None)
        if t is None:
            while len(cls._loaded) >= 2:  # at most two in memory: drop the least recently used
                del cls._loaded[next(iter(cls._loaded))]
            t = cls(spec)
        cls._loaded[spec.sha256] = t  # most recently used last
        return t

    @property
    def window_seconds(self) -> float:
        return self.logmel.n_samples / 16000

    def transcribe(self, clips: list) -> list[dict]:
        """``[{"text", "language", "language_prob", "capped"}]`` for a batch of mono 16 kHz
        float32 clips, each at most the teacher's window (the caller drops longer ones)."""
        import numpy as np
        import torch

        dtype = getattr(torch, self.spec.dtype)
        longest = max(len(c) for c in clips) / 16000
        budget = max(MIN_TOKENS, min(self.room, math.ceil(TOKENS_PER_SECOND * longest)))
        x = torch.from_numpy(np.stack([self.logmel(c) for c in clips])).to(
            self.spec.device, dtype)
        with torch.inference_mode():
            enc = self.model.get_encoder()(x)
            first = self.model(encoder_outputs=enc, decoder_input_ids=torch.full(
                (len(clips), 1), self.sot, dtype=torch.long, device=x.device)).logits[:, -1]
            probs = torch.softmax(first[:, self.lang_ids].float(), dim=-1).cpu()
            out = self.model.generate(x, encoder_outputs=enc, max_new_tokens=budget,
                                      num_beams=1, do_sample=False, return_timestamps=False,
                                      language=self.spec.language, task=self.spec.task)
        seqs = (out.sequences if hasattr(out, "sequences") else out).cpu()
        texts = self.tokenizer.batch_decode(seqs, skip_special_tokens=True)
        result = []
        for row, text, p in zip(seqs.tolist(), texts, probs):
            # transformers 5 returns the generated tokens without the forced prefix and drops
            # the final end of text: a transcript that used the whole budget never ended
            body = row[row.index(self.sot) + 1:] if self.sot in row else row
            written = sum(t != self.eot for t in body) - (4 if self.sot in row else 0)
            best = int(torch.argmax(p))
            result.append({"text": text.strip(), "language": self.lang_codes[best],
                           "language_prob": round(float(p[best]), 4),
                           "capped": budget if written >= budget else 0})
        return result
