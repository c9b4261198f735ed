"""What decides whether a teacher's transcript is a label worth training on: scores against the
existing transcript, the hallucination checks, and the thresholds — pure functions of the texts
and of what the teacher recorded (no model here), so a labelled folder can be filtered again
at another threshold without running the teacher again.

Scores (:func:`scores`) compare the texts in their normalized form (:func:`~sweaug.train.evaluate.wer_normalize`,
the function behind every sample's ``text_normalized`` and every WER sweaug reports): ``wer``
and ``cer`` of the teacher against the reference (jiwer), and ``head_cer``/``tail_cer``: the CER of
the first and of the last ``edge_chars`` characters — KB-Whisper's check for a transcript whose
alignment drifted at the segment edges (a word of the neighbouring segment in, or one of its own
out), which a whole-clip WER dilutes on a long segment (arXiv 2505.17538).

Drop reasons, in the order they are checked (the first that applies is counted):

* ``teacher_empty`` — the teacher wrote nothing (Whisper's answer to no speech);
* ``teacher_over_window`` — the clip is longer than the teacher's window (it would hear a part);
* ``teacher_repetitive`` — the same word n-gram (n <= :data:`MAX_N`) ``max_repeats`` times or more in
  a row, or the transcript ran into the token budget: the hallucination signature of a looping
  decoder (a reference that repeats itself as much makes it no drop);
* ``teacher_language`` — Whisper's language detection, on the same encoder pass, puts another
  language first with probability at least ``min_language_prob`` (default 0.5: Swedish audio that
  Whisper hesitates over between Swedish, Norwegian and Danish is kept; audio it is sure is
  another language is not);
* ``teacher_wer`` / ``teacher_edge_cer`` — over ``--max-wer`` / ``--max-edge-cer``;
* ``teacher_disagreement`` — unlabelled audio with a second teacher: the two transcripts differ by
  more than ``--max-wer`` (WER of the second against the first);
* ``leak_sentence`` — a teacher text that becomes a training text is an evaluation sentence.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..records import ConfigError

MAX_N = 8  # the longest word n-gram the repetition check looks for
REASONS = ("teacher_empty", "teacher_over_window", "teacher_repetitive", "teacher_language",
           "teacher_wer", "teacher_edge_cer", "teacher_disagreement", "leak_sentence")


def longest_run(words: list[str], max_n: int = MAX_N) -> int:
    """The most times any n-gram of ``words`` (n = 1..``max_n``) occurs back to back:
    ``"ja tack ja tack ja tack"`` -> 3, ``"en två tre"`` -> 1, ``""`` -> 0."""
    best = 1 if words else 0
    size = len(words)
    for n in range(1, min(max_n, size // 2) + 1):
        i = 0
        while i + 2 * n <= size:
            run = 1
            while words[i + run * n: i + (run + 1) * n] == words[i: i + n]:
                run += 1
            best = max(best, run)
            i += max(1, (run - 1) * n) if run > 1 else 1
    return best


def _cer(ref: str, hyp: str) -> float | None:
    import jiwer

    if not ref:
        return None if hyp else 0.0
    return float(jiwer.cer(ref, hyp)) if hyp else 1.0


def scores(reference: str, teacher: str, language: str = "sv", edge_chars: int = 10) -> dict:
    """``{"wer", "cer", "head_cer", "tail_cer"}`` of ``teacher`` against ``reference``, both
    normalized (see the module docstring); None where the reference is empty (no words to
    score against)."""
    from ..train.evaluate import wer_normalize, wer_stats

    ref, hyp = wer_normalize(reference, language), wer_normalize(teacher, language)
    if not ref:
        return {"wer": None, "cer": None, "head_cer": None, "tail_cer": None}
    errors, words = wer_stats([ref], [hyp])
    return {"wer": round(errors[0] / words[0], 6), "cer": round(_cer(ref, hyp), 6),
            "head_cer": round(_cer(ref[:edge_chars], hyp[:edge_chars]), 6),
            "tail_cer": round(_cer(ref[-edge_chars:], hyp[-edge_chars:]), 6)}


def agreement(first: str, second: str, language: str = "sv") -> float | None:
    """WER of ``second`` against ``first`` (normalized): two teachers' agreement."""
    return scores(first, second, language)["wer"]


@dataclass(frozen=True)
class Thresholds:
    """The filters of one ``sweaug label`` run (None: that filter is off)."""

    max_wer: float | None = None
    max_edge_cer: float | None = None
    max_repeats: int = 4  # 0: no repetition check
    language_check: bool = True
    edge_chars: int = 10
    min_language_prob: float = 0.5

    def __post_init__(self):
        for name in ("max_wer", "max_edge_cer"):
            v = getattr(self, name)
            if v is not None and not (math.isfinite(v) and v >= 0):
                raise ConfigError(f"--{name.replace('_', '-')} must be a number >= 0 (a share: "
                                  f"0.1 keeps samples with at most 10 %), got {v}")
        if self.max_repeats < 0 or self.max_repeats == 1:
            raise ConfigError(f"--max-repeats must be 0 (off) or at least 2, got "
                              f"{self.max_repeats}")
        if not 0 <= self.min_language_prob <= 1:
            raise ConfigError(f"--min-language-prob must be within 0..1, got "
                              f"{self.min_language_prob}")
        if self.edge_chars < 1:
            raise ConfigError(f"--edge-chars must be at least 1, got {self.edge_chars}")

    def as_dict(self) -> dict:
        return asdict(self)


def verdict(t: Thresholds, teacher: dict, reference: str, language: str,
            teacher2: dict | None = None) -> tuple[str, str] | None:
    """``(reason, detail)`` when the sample is dropped, else None. ``teacher`` is a sample's
    ``teacher`` record (text, scores, ``language``/``language_prob``, ``repeats``, ``capped``,
    ``over_window``); ``reference`` the existing transcript ("" for unlabelled audio)."""
    from ..train.evaluate import wer_normalize

    words = wer_normalize(teacher["text"], language).split()
    if teacher.get("over_window"):
        return "teacher_over_window", (f"{teacher['seconds']:.2f} s, longer than the teacher's "
                                       f"{teacher['window']:g}-s window")
    if not words:
        return "teacher_empty", "the teacher wrote nothing"
    if t.max_repeats:
        ref_run = longest_run(wer_normalize(reference, language).split())
        if teacher["repeats"] >= t.max_repeats and teacher["repeats"] > ref_run:
            return "teacher_repetitive", (f"an n-gram {teacher['repeats']} times in a row: "
                                          f"{teacher['text'][:80]!r}")
        if teacher.get("capped"):
            return "teacher_repetitive", (f"ran into the {teacher['capped']}-token budget: "
                                          f"{teacher['text'][-80:]!r}")
    if t.language_check and teacher.get("language") not in (None, language) \
            and teacher["language_prob"] >= t.min_language_prob:
        return "teacher_language", (f"detected {teacher['language']} "
                                    f"(p={teacher['language_prob']:.2f}), not {language}")
    if reference:
        if t.max_wer is not None and (teacher["wer"] is None or teacher["wer"] > t.max_wer):
            return "teacher_wer", f"WER {teacher['wer']} > {t.max_wer}"
        if t.max_edge_cer is not None:
            edge = max(teacher["head_cer"], teacher["tail_cer"])
            if edge > t.max_edge_cer:
                return "teacher_edge_cer", (f"head CER {teacher['head_cer']}, tail CER "
                                            f"{teacher['tail_cer']} > {t.max_edge_cer}")
    elif teacher2 is not None and t.max_wer is not None:
        a = teacher2.get("agreement")
        if a is None or a > t.max_wer:
            return "teacher_disagreement", (f"the two teachers differ by WER {a} > {t.max_wer}: "
                                            f"{teacher2['text'][:80]!r}")
    return None
