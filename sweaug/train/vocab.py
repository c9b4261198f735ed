"""``training.vocabulary: transcripts``: a softmax over the tokens the training transcripts use.

Whisper's output layer scores all 51,865 tokens at every position. A model trained from
scratch on a small corpus (the demo's tiny Whisper: 214 distinct tokens) spends most of a CPU
step there: on 2 cores, the 51,865-row projection, its log-softmax and their gradients are
about half of the step (measured with torch.profiler, 3.2 s window, batch 8), and every row it
does not need only ever learns to be unlikely. With ``vocabulary: transcripts`` the training
loss is a softmax over the *kept* tokens only: every token of every label of the mix's training
transcripts (prefix tokens and ``<|endoftext|>`` included, tokenized exactly as
:class:`~sweaug.train.mix.MixStream` does) plus the decoder start token. The other tokens are
written into the saved model's ``generation_config.suppress_tokens``, so ``generate`` — the
evaluation, ``sweaug app``, an exported Space — never emits them, and the evaluation loss is
the loss over the same kept tokens (:func:`~sweaug.train.evaluate.evaluate_set` masks the
suppressed ones). Nothing is read from the evaluation sets.

Meant for models trained from scratch (``model: tiny-random``). For a pretrained Whisper keep
the default ``full``: suppressing every token the fine-tuning data lacks would forbid words it
already knows.
"""
from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Iterable

import torch


def transcript_tokens(shard_lists: Iterable[Iterable], tokenizer, text_field: str = "text"
                      ) -> list[int]:
    """Sorted ids of every token in the labels of the shards' samples (only the ``.json``
    members are read; the audio is skipped)."""
    kept: set[int] = set()
    for shards in shard_lists:
        for shard in shards:
            with tarfile.open(Path(shard), "r") as tar:
                for m in tar:
                    if m.name.endswith(".json"):
                        meta = json.loads(tar.extractfile(m).read())
                        kept.update(tokenizer(meta[text_field]).input_ids)
    return sorted(kept)


def suppressed(vocab_size: int, kept: Iterable[int]) -> list[int]:
    """Every token id that is not kept, ascending (for ``generation_config.suppress_tokens``)."""
    keep = set(kept)
    return [i for i in range(vocab_size) if i not in keep]


class KeptLogits(torch.nn.Module):
    """Stands in for Whisper's ``proj_out`` while training: logits of the kept tokens only,
    from rows of the same (tied) weight. ``weight`` is the very Parameter of ``proj_out`` /
    ``embed_tokens``, so the state dict, checkpoints and DDP see the model unchanged."""

    def __init__(self, proj: torch.nn.Module, kept: list[int]):
        super().__init__()
        self.weight = proj.weight
        self.register_buffer("kept", torch.tensor(kept, dtype=torch.long), persistent=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.linear(hidden, self.weight[self.kept])


def index_of(vocab_size: int, kept: list[int]) -> torch.Tensor:
    """``index_of[token] = position in kept`` (−100, the ignored label, for the others)."""
    table = torch.full((vocab_size,), -100, dtype=torch.long)
    table[torch.tensor(kept, dtype=torch.long)] = torch.arange(len(kept))
    return table
