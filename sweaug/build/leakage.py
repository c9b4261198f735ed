"""The leakage guard: no training record may share a sentence with any evaluation set (of any
source) or a speaker with an evaluation split of its own source.

Evaluation splits of every source being built, and any ``--eval`` shard folder, are
registered before any training record is accepted.
"""
from __future__ import annotations

import json
from pathlib import Path

from ..records import Utterance


class LeakageGuard:
    def __init__(self) -> None:
        self._sentences: dict[str, str] = {}  # normalized sentence -> where it was seen
        self._speakers: dict[tuple[str, str], str] = {}  # (source, speaker) -> where

    def register(self, source: str, split: str, key: str, normalized: str, speaker: str) -> None:
        where = f"{source}/{split}/{key}"
        if normalized:
            self._sentences.setdefault(normalized, where)
        if speaker:
            self._speakers.setdefault((source, speaker), where)

    def register_utterance(self, utt: Utterance) -> None:
        self.register(utt.source, utt.split, utt.key, utt.normalized, utt.speaker)

    def register_shards(self, folder: Path) -> int:
        """Register every sample of the tar shards under ``folder`` (an ``--eval`` set)."""
        shards = sorted(Path(folder).rglob("*.tar"))
        if not shards:
            from ..records import SourceError
            raise SourceError(f"--eval {folder}: no .tar shards found there")
        return self.register_shard_files(shards)

    def register_shard_files(self, shards, what: str = "--eval") -> int:
        """Register every sample of the tar ``shards`` (``what``: where they come from, for
        the error naming a sample without sweaug JSON).

        The sentence is normalized again from the sample's ``text`` with this sweaug's
        normalizer: shards built by another normalizer version store a ``text_normalized``
        that the training records' would not match."""
        from .shards import iter_samples
        from .text import normalized_text

        n = 0
        for shard in shards:
            for key, files in iter_samples(shard, only=("json",)):
                try:
                    meta = json.loads(files["json"])
                    normalized = normalized_text(meta["text"], meta.get("language") or "sv")
                    source, split = meta["source"], meta["split"]
                except (AttributeError, KeyError, TypeError, ValueError) as e:
                    from ..records import SourceError
                    raise SourceError(f"{what} {shard}: sample {key!r} has no readable sweaug "
                                      f"JSON ({type(e).__name__}: {e})") from None
                self.register(source, split, key, normalized, meta.get("speaker", ""))
                n += 1
        return n

    def sentences(self) -> dict[str, str]:
        """Normalized sentence -> where it was registered."""
        return dict(self._sentences)

    @property
    def sentence_count(self) -> int:
        return len(self._sentences)

    def check(self, utt: Utterance) -> tuple[str, str] | None:
        """``(reason, where)`` when a training record leaks, else None."""
        where = self._sentences.get(utt.normalized)
        if where is not None:
            return "leak_sentence", where
        if utt.speaker:
            where = self._speakers.get((utt.source, utt.speaker))
            if where is not None:
                return "leak_speaker", where
        return None
