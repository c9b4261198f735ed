"""A seeded, speaker-disjoint train/validation/test split for rows that come without a split
(``sweaug build --split-by-speaker TRAIN,DEV,TEST --split-seed N``; used by the ``local`` source).

A *group* is ``("speaker", id)`` for a row with a speaker id and ``("row", key)`` for a row
without one: such a row is its own speaker. Shares are shares of rows (clip durations are not
known before decoding).
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Mapping, Sequence

from ..records import SPLITS, ConfigError

Group = tuple[str, str]


def check_fractions(values: Sequence[float]) -> tuple[float, float, float]:
    """``values`` as a (train, validation, test) tuple, or ConfigError saying what is wrong."""
    if len(values) != 3:
        raise ConfigError(f"--split-by-speaker needs three fractions TRAIN,DEV,TEST such as "
                          f"0.8,0.1,0.1, got {len(values)}")
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigError(f"--split-by-speaker fractions must be numbers >= 0, got "
                          f"{','.join(f'{v:g}' for v in values)}")
    if abs(sum(values) - 1) > 1e-6:
        raise ConfigError(f"--split-by-speaker fractions must sum to 1, "
                          f"{','.join(f'{v:g}' for v in values)} sums to {sum(values):g}")
    return tuple(float(v) for v in values)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """``"0.8,0.1,0.1"`` -> ``(0.8, 0.1, 0.1)``; ConfigError on anything else."""
    try:
        values = [float(p) for p in text.split(",")]
    except ValueError:
        raise ConfigError(f"--split-by-speaker takes three numbers TRAIN,DEV,TEST such as "
                          f"0.8,0.1,0.1, got {text!r}") from None
    return check_fractions(values)


def group_of(speaker: str, key: str) -> Group:
    return ("speaker", speaker) if speaker else ("row", key)


def assign_speakers(rows: Mapping[Group, int], fractions: Sequence[float], seed: int
                    ) -> dict[Group, str]:
    """Every group (``rows``: group -> its row count) to one split: speaker-disjoint, seeded.

    1. Groups are taken in the order of ``sha256([seed, *group])``: a seeded shuffle that depends
       on nothing else (not the input order, not the worker count).
    2. Each goes to the split (of those with a fraction > 0) whose row target, fraction x all
       rows, is furthest from met (ties: train, validation, test), so each split's share of rows
       ends within about one group's rows of its fraction.
    3. While there are at least as many groups as splits with a fraction > 0, such a split left
       empty takes the smallest group (among equals the last in seeded order) of the split with
       the most groups, so that every asked-for split gets a speaker.
    """
    fractions = check_fractions(fractions)
    order = sorted(rows, key=lambda g: hashlib.sha256(json.dumps([seed, *g]).encode())
                   .hexdigest())
    wanted = [s for s, f in zip(SPLITS, fractions) if f > 0]
    total = sum(rows.values())
    target = {s: f * total for s, f in zip(SPLITS, fractions)}
    got = dict.fromkeys(SPLITS, 0)
    members: dict[str, list[Group]] = {s: [] for s in SPLITS}
    for g in order:
        split = max(wanted, key=lambda s: target[s] - got[s])  # first among ties
        members[split].append(g)
        got[split] += rows[g]
    if len(order) >= len(wanted):
        position = {g: i for i, g in enumerate(order)}
        for split in wanted:
            if not members[split]:
                donor = max(wanted, key=lambda s: len(members[s]))  # has >= 2 (pigeonhole)
                g = min(members[donor], key=lambda g: (rows[g], -position[g]))
                members[donor].remove(g)
                members[split].append(g)
    return {g: split for split, gs in members.items() for g in gs}


def split_counts(rows: Mapping[Group, int], assignment: Mapping[Group, str]) -> dict:
    """Per split: the rows assigned, the speakers among them, and the rows without a speaker
    (for the manifest)."""
    out = {s: {"rows": 0, "speakers": 0, "rows_without_speaker": 0} for s in SPLITS}
    for g, n in rows.items():
        c = out[assignment[g]]
        c["rows"] += n
        if g[0] == "speaker":
            c["speakers"] += 1
        else:
            c["rows_without_speaker"] += n
    return out
