"""Token ids of a training sample: a sentence's transcript, or a window's Whisper target.

A sentence (``sweaug build``/``augment`` output) is tokenized as every fine-tuning notebook
does: ``<|startoftranscript|><|sv|><|transcribe|><|notimestamps|> text<|endoftext|>``.

A window (``sweaug windows`` output: its json has ``segments``, ``target`` and ``window``) gets
Whisper's own training format (Radford et al. 2022, §2.3 and Figure 1):

- timestamped: ``<|sot|><|sv|><|transcribe|><|0.00|> Hej.<|1.20|><|1.60|> Nästa.<|3.40|>``
  ``<|27.80|><|endoftext|>`` — built from ``segments`` (a straddling segment: its start only),
  not by parsing the target string, so on-the-fly time stretching can rescale the times
  (``scale``);
- ``<|notimestamps|>``: the complete segments' text, exactly like a sentence;
- with ``prev_text``: the prompt ``<|startofprev|>`` + the previous text's tokens (the last
  ``max_prompt`` of them, as openai/whisper's decoding keeps the last n_ctx/2 - 1 = 223) in front
  of ``<|startoftranscript|>``; the collator feeds it to the decoder and masks it from the loss;
- no speech: the empty transcript under the forced prefix,
  ``<|sot|><|sv|><|transcribe|><|notimestamps|><|endoftext|>``, and at the position after
  ``<|startoftranscript|>`` the target is ``<|nospeech|>`` instead of the language token
  (``first_target``). That position's ``<|nospeech|>`` probability is what transformers' (and
  openai's) long-form decoding reads as ``no_speech_prob`` to skip silence, and the empty
  transcript is what forced-language decoding — sweaug's evaluation — must produce on silence.
  Whisper's no-speech token is ``<|notimestamps|> - 1`` (transformers' WhisperNoSpeechDetection
  takes it so too).
"""
from __future__ import annotations

from dataclasses import dataclass, field

STEP = 0.02  # Whisper's timestamp resolution (s)
#: openai/whisper keeps the last n_ctx // 2 - 1 tokens of the previous text as the prompt
MAX_PROMPT = 223


@dataclass
class Labels:
    labels: list[int]  # <|startoftranscript|> ... <|endoftext|>
    prompt: list[int] = field(default_factory=list)  # <|startofprev|> ... (masked from the loss)
    first_target: int | None = None  # the target after <|startoftranscript|> when not labels[1]
    cut_at: float | None = None  # seconds: the audio ends here (a window cut to fit)

    def decoder_length(self) -> int:
        """Tokens the decoder reads: the prompt and the labels without their last."""
        return len(self.prompt) + len(self.labels) - 1


def is_window(meta: dict) -> bool:
    return "segments" in meta and "window" in meta and "timestamps" in meta


class Labeller:
    """``Labeller(tokenizer, max_target_positions)(meta, scale=1.0) -> Labels`` (see the module
    docstring). ``tokenizer``: a Whisper tokenizer with its prefix tokens set (language, task)
    and timestamp tokens (the Hub's tokenizers and sweaug's offline one have them)."""

    def __init__(self, tokenizer, max_target_positions: int = 448, text_field: str = "text"):
        self.tok, self.text_field = tokenizer, text_field
        self.max_prompt = max(0, min(MAX_PROMPT, int(max_target_positions) // 2 - 1))
        self._ids: dict[str, int] | None = None

    def ids(self) -> dict[str, int]:
        """The special ids, looked up once (and checked: a tokenizer without timestamp tokens
        cannot train windows)."""
        if self._ids is None:
            conv = self.tok.convert_tokens_to_ids
            names = ("<|startoftranscript|>", "<|startofprev|>", "<|notimestamps|>",
                     "<|endoftext|>", "<|0.00|>")
            got = {n: conv(n) for n in names}
            unk = getattr(self.tok, "unk_token_id", None)  # Whisper's is <|endoftext|>
            missing = [n for n, i in got.items()
                       if i is None or (i == unk and n != getattr(self.tok, "unk_token", None))]
            if missing:
                raise ValueError(f"the tokenizer has no {', '.join(missing)} token: it cannot "
                                 f"build Whisper's window targets")
            got["nospeech"] = got["<|notimestamps|>"] - 1
            self._ids = got
        return self._ids

    def __call__(self, meta: dict, scale: float = 1.0, cut: float | None = None
                 ) -> Labels | None:
        """The sample's labels; for a window, its segments' times x ``scale`` (a time
        stretch), and with ``cut`` (seconds: the audio was cut there to fit the model's
        window) the segments past the cut left out and one that crosses it straddling —
        Whisper's rule for the window end. A ``<|notimestamps|>`` window cannot say where a
        segment starts: its audio is cut before the crossing segment instead (``cut_at``),
        which leaves the text; None when that would leave no segment (the sample is dropped)."""
        if not is_window(meta):
            return Labels(list(self.tok(meta[self.text_field]).input_ids))
        ids = self.ids()
        prompt = []
        prev = (meta.get("prev_text") or "").strip()
        if prev and self.max_prompt:
            text = self.tok.encode(" " + prev, add_special_tokens=False)
            prompt = [ids["<|startofprev|>"]] + text[-self.max_prompt:]
        if meta.get("no_speech"):
            return Labels(list(self.tok("").input_ids), prompt, ids["nospeech"], cut_at=cut)
        segs = meta["segments"]
        cut_at = cut
        if cut is not None:
            kept = []
            for g in segs:
                if g["start"] * scale >= cut - STEP:
                    break
                if g["end"] * scale > cut and not g.get("straddles"):
                    if not meta["timestamps"]:
                        cut_at = g["start"] * scale  # the audio ends before this segment
                        break
                    g = {**g, "straddles": True}
                kept.append(g)
            segs = kept
        if not meta["timestamps"]:
            complete = [g for g in segs if not g.get("straddles")]
            if cut is not None and not complete:
                return None
            text = " ".join(g["text"] for g in complete)
            return Labels(list(self.tok(text).input_ids), prompt, cut_at=cut_at)
        prefix = [i for i in self.tok.prefix_tokens if i != ids["<|notimestamps|>"]]
        limit = float(meta.get("duration", 30.0)) * scale if cut is None else cut
        out = list(prefix)
        for s in segs:
            out.append(self._stamp(s["start"] * scale, limit))
            if s.get("straddles"):
                continue
            out += self.tok.encode(" " + s["text"].strip(), add_special_tokens=False)
            out.append(self._stamp(s["end"] * scale, limit))
        return Labels(out + [ids["<|endoftext|>"]], prompt, cut_at=cut_at)

    def _stamp(self, seconds: float, limit: float) -> int:
        """The timestamp token of ``seconds`` on the 0.02 s grid, within the audio."""
        k = int(round(min(max(seconds, 0.0), limit) / STEP))
        return self.ids()["<|0.00|>"] + min(k, 1500)

    def text_tokens(self, meta: dict) -> set[int]:
        """Every id the loss can target for this sample (``vocabulary: transcripts``)."""
        lab = self(meta)
        out = set(lab.labels)
        if lab.first_target is not None:
            out.add(lab.first_target)
        return out
