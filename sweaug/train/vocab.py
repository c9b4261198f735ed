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

from pathlib import Path
from typing import Iterable

import torch


def transcript_tokens(shard_lists: Iterable[Iterable], tokenizer, text_field: str = "text"
                      ) -> list[int]:
    """Sorted ids of every token in the labels of the shards' samples (only the ``.json``
    members are read; the audio is skipped), built as :class:`~sweaug.train.labels.Labeller`
    builds them. With a window set among them, every timestamp token and ``<|nospeech|>`` are
    kept too: long-form decoding must be able to emit any time in the window (on-the-fly time
    stretching moves them), not only the ones the training targets happen to hold."""
    from ..build.shards import iter_samples
    from .labels import Labeller, is_window
    from .samples import sample_meta

    labeller = Labeller(tokenizer, text_field=text_field)
    kept: set[int] = set()
    windows = False
    for shards in shard_lists:
        for shard in shards:
            for key, files in iter_samples(Path(shard), only=("json",)):
                meta = sample_meta(shard, key, files, (text_field,))
                kept.update(labeller.text_tokens(meta))
                windows = windows or is_window(meta)
    if windows:
        ids = labeller.ids()
        kept.update(range(ids["<|0.00|>"], ids["<|0.00|>"] + 1501))
        kept.add(ids["nospeech"])
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


def kept_token_loss(model, inputs: dict, index: torch.Tensor, config):
    """``(loss, outputs)``: the cross-entropy over the kept tokens of a model whose ``proj_out``
    is a :class:`KeptLogits` (``inputs``: ``input_features`` and full-vocabulary ``labels``,
    −100 padded; ``index``: :func:`index_of` the kept tokens). Decoder inputs are the labels
    shifted right, as Whisper's own forward makes them, unless the batch has its own
    ``decoder_input_ids`` (windows with a prompt: :class:`~sweaug.train.mix.SpeechCollator`)."""
    from transformers.models.whisper.modeling_whisper import shift_tokens_right

    inputs = dict(inputs)
    labels = inputs.pop("labels")
    decoder_input_ids = inputs.pop("decoder_input_ids", None)
    if decoder_input_ids is None:
        decoder_input_ids = shift_tokens_right(labels, config.pad_token_id,
                                               config.decoder_start_token_id)
    out = model(**inputs, decoder_input_ids=decoder_input_ids)
    target = torch.where(labels == -100, labels, index.to(labels.device)[labels.clamp(min=0)])
    if bool(((target == -100) & (labels != -100)).any()):  # cannot happen: kept = labels
        raise RuntimeError("a training label is not among the kept tokens")
    loss = torch.nn.functional.cross_entropy(
        out.logits.float().reshape(-1, out.logits.shape[-1]), target.reshape(-1),
        ignore_index=-100)
    return loss, out


def index_of(vocab_size: int, kept: list[int]) -> torch.Tensor:
    """``index_of[token] = position in kept`` (−100, the ignored label, for the others)."""
    table = torch.full((vocab_size,), -100, dtype=torch.long)
    table[torch.tensor(kept, dtype=torch.long)] = torch.arange(len(kept))
    return table
