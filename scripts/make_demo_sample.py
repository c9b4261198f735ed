#!/usr/bin/env python3
"""Generate ``sweaug/sample/demo``: the Common Voice-layout corpus that ``sweaug demo`` trains on.

    python scripts/make_demo_sample.py              # build + self-check
    python scripts/make_demo_sample.py --no-check   # build only
    python scripts/make_demo_sample.py --out DIR    # somewhere else (DIR gets the same layout)

Output (exactly the layout of a real CV v17 release, only the files sweaug reads):

    sweaug/sample/demo/cv-corpus-17.0-2024-03-15/sv-SE/
        clips/common_voice_sv-SE_<n>.mp3   16 kHz mono MP3 (libsndfile/LAME, see MP3_* below)
        train.tsv dev.tsv test.tsv clip_durations.tsv
    sweaug/sample/demo/README.md

What it is for: a tiny Whisper trained from scratch for a few CPU minutes must be able to
transcribe HELD-OUT sentences. So the text is not a list of memorisable sentences but the
output of a small Swedish grammar (present tense, V2 word order, negation, yes/no and
wh-questions, modal + infinitive, weather "det") over a fixed lexicon:

* train sentences are picked greedily so that every word of the lexicon is heard often;
* dev/test sentences are NEW combinations: none occurs in train (after sweaug's own
  ``normalized_text``, i.e. what the leakage guard compares), all are distinct, and every
  word in them occurs at least ``MIN_TRAIN_COUNT`` times in train (checked and printed);
* splits are speaker-disjoint (8 train, 2 dev, 2 test espeak-ng voices; dev/test voices reuse
  train voice variants with other pitch/speed/level, i.e. "new people of a familiar kind");
* no sentence equals one of scripts/make_fixtures.py's pool (the FLEURS sample's test split),
  so building the demo's sources together drops nothing as a cross-source leak.

Size: at most 3 MB (``du -sb``): 8 kbit/s CBR MP3 (see MP3_* below), clips of 1.2-3.0 s.
Why 1,260 train clips: from 420 sentences the tiny model learned the sentences rather than to
listen (after 1,000 steps, train sentences read by unseen voices: 16 % WER; unseen sentences
read by train voices: 71 %); on three times as many, 1,500 steps gave 48 % WER on the
held-out ones in a side run (full vocabulary). ``validated.tsv`` is left out: sweaug reads it only
with ``--cv-extra validated``, and it would add 0.4 MB.

Determinism: every choice comes from a fixed seed; espeak-ng, soxr and libsndfile's LAME
encoder are deterministic for a given tool version, so a re-run rewrites byte-identical files
(the self-check verifies decode + durations; compare with ``sha256sum`` to confirm bytes).

Tools: espeak-ng, numpy, soundfile (>= 0.13: MP3 write), soxr.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import shutil
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "scripts") not in sys.path:
    sys.path.insert(0, str(REPO / "scripts"))
from sweaug.build.text import normalized_text, target_text  # noqa: E402  (the guard's own normaliser)
# the fixtures' conventions (CV v17 columns, seeds, ids, trimming) and their sentence pool
from fixtures.common import SV_SENTENCES, espeak_wav, seed_of, trim  # noqa: E402
from fixtures.cv import CV17_GENDER, CV17_HEADER, sentence_id  # noqa: E402

RELEASE = "cv-corpus-17.0-2024-03-15"
LOCALE = "sv-SE"
SEED = 20240315
N_TRAIN, N_DEV, N_TEST = 1260, 40, 60
MIN_S, MAX_S = 1.2, 3.0          # clip duration bounds (after trimming)
MAX_CPS = 21.0                   # normalised chars/s; sweaug's training filter drops > 25
MIN_TRAIN_COUNT = 5              # every dev/test word occurs at least this often in train
SR = 16_000
ESPEAK_SR = 22_050
# libsndfile's MP3 writer (LAME). At 16 kHz (MPEG-2 layer III) CONSTANT mode only offers 8 or
# 16 kbit/s (compression_level >= 0.97 -> 8), AVERAGE bottoms out at ~12 kbit/s (0.995, lowpass
# ~3 kHz) and VARIABLE at ~25. The TSVs alone are ~0.45 MB (a 290-byte row per clip:
# 128-hex client_id, 64-hex sentence_id), so only 8 kbit/s CBR (~1 KB/s) fits ~1,360 clips in
# the 3 MB budget. It is telephone-like but the tiny model learned at least as well from it as
# from 12 kbit/s ABR. CBR writes no Xing header: decoders return the encoder delay/padding too
# (~0.1 s longer than the PCM), and clip_durations.tsv records that decoded length.
MP3_BITRATE_MODE = "CONSTANT"
MP3_COMPRESSION = 0.97

def client_id(speaker: str) -> str:
    return hashlib.sha512(f"sweaug-demo-client/{speaker}".encode()).hexdigest()  # 128 hex


def tsv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    """Unquoted TSV (csv.QUOTE_NONE style), like the real release."""
    out = ["\t".join(header)]
    for r in rows:
        assert not any("\t" in f or "\n" in f or '"' in f for f in r), r
        out.append("\t".join(r))
    return ("\n".join(out) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Lexicon (present tense only; every verb has its infinitive for the modal pattern)
# ---------------------------------------------------------------------------------------------
SUBJECTS = ["jag", "du", "han", "hon", "vi", "de", "Anna", "Erik", "Sara", "Johan", "min bror",
            "min syster", "läraren", "barnen"]
PEOPLE = ["Anna", "Erik", "läraren", "barnen", "min bror", "grannen"]

# (present, infinitive or None = not used with a modal, objects)
TRANSITIVE = [
    ("läser", "läsa", ["boken", "tidningen", "ett brev"]),
    ("köper", "köpa", ["fisk", "bröd", "kaffe", "mjölk", "en cykel", "boken", "tidningen", "glass"]),
    ("äter", "äta", ["fisk", "bröd", "ett äpple", "glass"]),
    ("dricker", "dricka", ["kaffe", "te", "mjölk", "vatten"]),
    ("öppnar", "öppna", ["dörren", "fönstret", "boken"]),
    ("stänger", None, ["dörren", "fönstret"]),
    ("hittar", None, ["nycklarna", "cykeln", "boken", "väskan"]),
    ("behöver", None, ["nycklarna", "en cykel", "hjälp", "vatten"]),
    ("ser", "se", ["huset", "bilen", "barnen", "grannen", "tåget"]),
    ("träffar", "träffa", PEOPLE),
    ("hjälper", None, PEOPLE),
    ("väntar", None, ["på bussen", "på tåget", "på Anna", "på grannen"]),   # prepositional object
    ("lagar", None, ["maten", "cykeln", "bilen"]),
    ("målar", None, ["huset", "dörren"]),
    ("spelar", "spela", ["fotboll", "piano"]),
]
PLACES = ["hemma", "i köket", "i parken", "i skolan", "på kontoret", "på stationen", "på bussen",
          "vid sjön", "i Malmö", "i Umeå", "på landet"]
CITIES = ["i Malmö", "i Umeå", "i Lund"]
# (present, infinitive or None, places it goes with)
INTRANSITIVE = [
    ("bor", None, CITIES + ["på landet", "vid sjön"]),
    ("arbetar", None, ["på kontoret", "i skolan", "hemma", "i Malmö"]),
    ("sover", None, ["hemma", "på bussen", "på landet"]),
    ("sitter", None, ["i köket", "i parken", "på bussen", "vid sjön"]),
    ("leker", None, ["i parken", "i skolan", "hemma", "vid sjön"]),
    ("väntar", None, ["på stationen", "hemma", "i parken"]),
]
MOTION = [("åker", "åka"), ("går", "gå"), ("cyklar", None)]
DESTINATIONS = ["hem", "till skolan", "till jobbet", "till stan", "till Malmö"]
WEATHER = [("regnar", "regna"), ("snöar", "snöa")]
TIMES = ["i dag", "i morgon", "nu", "på morgonen", "på kvällen", "varje dag", "på lördag"]
CLOCK_TIMES = ["klockan 7", "klockan 8"]   # the only digits: kept rare
P_CLOCK = 0.07                             # share of time adverbials that are clock times
MODALS = ["vill", "ska", "kan"]


# ---------------------------------------------------------------------------------------------
# Grammar
# ---------------------------------------------------------------------------------------------
# sentence pattern -> weight (share of the train split; dev/test follow the candidate pool)
PATTERNS = {
    "svo": 16, "t_vso": 9, "neg": 6, "t_neg": 3, "q_yn": 6, "q_vad": 4, "q_nar": 3, "q_varfor": 2,
    "modal": 7, "modal_neg": 2, "q_modal": 3, "intr": 8, "t_intr": 4, "q_var": 2, "motion": 6,
    "t_motion": 3, "q_motion": 2, "modal_motion": 2, "weather": 2, "t_weather": 2, "q_weather": 1,
    "modal_weather": 1,
}


class Gen:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def pick(self, xs):
        return xs[int(self.rng.integers(len(xs)))]

    def coin(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def time(self) -> str:
        return self.pick(CLOCK_TIMES) if self.coin(P_CLOCK) else self.pick(TIMES)

    def subject(self, avoid: str = "") -> str:
        while True:
            s = self.pick(SUBJECTS)
            if s != avoid:
                return s

    def obj(self, objs: list[str], subj: str) -> str:
        while True:
            o = self.pick(objs)
            if o != subj:
                return o

    def adverbial(self, places: list[str] = PLACES) -> list[str]:
        r = self.rng.random()
        return [] if r < 0.3 else [self.pick(places)] if r < 0.65 else [self.time()]

    def sentence(self) -> tuple[str, str]:
        """(text, pattern name)."""
        names = list(PATTERNS)
        w = np.array(list(PATTERNS.values()), dtype=float)
        name = names[int(self.rng.choice(len(names), p=w / w.sum()))]
        s = self.subject()
        v, inf, objs = self.pick(TRANSITIVE)
        o = self.obj(objs, s)
        iv, iinf, iplaces = self.pick(INTRANSITIVE)
        mv, minf = self.pick(MOTION)
        if name.startswith("modal") or name == "q_modal":   # verbs used with a modal
            v, inf, objs = self.pick([t for t in TRANSITIVE if t[1]])
            o = self.obj(objs, s)
            mv, minf = self.pick([t for t in MOTION if t[1]])
        wv, winf = self.pick(WEATHER)
        m = self.pick(MODALS)
        q = "?"
        words: list[str]
        if name == "svo":
            words, q = [s, v, o, *self.adverbial()], "."
        elif name == "t_vso":
            words, q = [self.time(), v, s, o, *([self.pick(PLACES)] if self.coin(0.3) else [])], "."
        elif name == "neg":
            words, q = [s, v, "inte", o, *self.adverbial()], "."
        elif name == "t_neg":
            words, q = [self.time(), v, s, "inte", o], "."
        elif name == "q_yn":
            words = [v, s, o, *self.adverbial()]
        elif name == "q_vad":   # not with a prepositional object ("Vad väntar du på?")
            while objs[0].startswith("på "):
                v, inf, objs = self.pick(TRANSITIVE)
            words = ["vem" if objs is PEOPLE else "vad", v, s, *self.adverbial()]
        elif name == "q_nar":
            words = ["när", v, s, o]
        elif name == "q_varfor":
            words = ["varför", v, s, "inte", o]
        elif name == "modal":
            words, q = [s, m, inf, o, *self.adverbial()], "."
        elif name == "modal_neg":
            words, q = [s, m, "inte", inf, o], "."
        elif name == "q_modal":
            words = [m, s, inf, o]
        elif name == "intr":
            words, q = [s, iv, self.pick(iplaces), *([self.time()] if self.coin(0.4) else [])], "."
        elif name == "t_intr":
            words, q = [self.time(), iv, s, self.pick(iplaces)], "."
        elif name == "q_var":
            words = ["var", iv, s]
        elif name == "motion":
            words, q = [s, mv, self.pick(DESTINATIONS), *([self.time()] if self.coin(0.4) else [])], "."
        elif name == "t_motion":
            words, q = [self.time(), mv, s, self.pick(DESTINATIONS)], "."
        elif name == "q_motion":
            words = ["när", mv, s, self.pick(DESTINATIONS)]
        elif name == "modal_motion":
            words, q = [s, m, minf, self.pick(DESTINATIONS)], "."
        elif name == "weather":
            words, q = ["det", wv, *self.adverbial(CITIES + ["på landet"])], "."
        elif name == "t_weather":
            words, q = [self.time(), wv, "det", *([self.pick(CITIES)] if self.coin(0.5) else [])], "."
        elif name == "q_weather":
            words = [wv, "det", self.pick(CITIES)]
        else:  # modal_weather
            words, q = ["det", self.pick(["ska", "kan"]), winf, self.time()], "."
        text = " ".join(words)
        return text[0].upper() + text[1:] + q, name


def words_of(text: str) -> list[str]:
    """Word tokens as the model hears them: sweaug's normalised text (digits spelled out)."""
    return normalized_text(text).split()


def candidates(n_draws: int) -> list[tuple[str, str]]:
    """Distinct (after normalisation) grammar sentences of 3..7 words, in a fixed order."""
    g = Gen(seed_of(SEED, "grammar"))
    excluded = _other_sample_sentences()
    seen: set[str] = set()
    out = []
    for _ in range(n_draws):
        text, name = g.sentence()
        key = normalized_text(text)
        if key in seen or key in excluded or not 3 <= len(text.split()) <= 7:
            continue
        assert target_text(text) == text, text   # nothing for the normaliser to change
        seen.add(key)
        out.append((text, name))
    return out


def _other_sample_sentences() -> set[str]:
    """Sentences of the other bundled samples (FLEURS test etc.): a CV train row equal to one of
    them would be dropped by the cross-source leakage guard when ``sweaug demo`` builds them
    together, so the grammar never emits them (e.g. "Min bror bor i Göteborg.")."""
    return {normalized_text(s) for s in SV_SENTENCES}


# ---------------------------------------------------------------------------------------------
# Speakers
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Speaker:
    name: str
    split: str
    variant: str       # espeak-ng variant ("" = the plain sv voice)
    speed: int         # words per minute
    pitch: int         # 0..99
    gain: float        # peak level
    age: str

    @property
    def gender(self) -> str:
        return "female" if self.variant.startswith("f") else "male"

    def espeak_args(self) -> list[str]:
        voice = "sv" + (f"+{self.variant}" if self.variant else "")
        return ["-v", voice, "-s", str(self.speed), "-p", str(self.pitch)]


SPEAKERS = [
    Speaker("demo-train-1", "train", "", 172, 42, 0.62, "thirties"),
    Speaker("demo-train-2", "train", "f1", 165, 58, 0.55, "twenties"),
    Speaker("demo-train-3", "train", "m3", 180, 34, 0.70, "fourties"),
    Speaker("demo-train-4", "train", "f2", 156, 64, 0.48, "fifties"),
    Speaker("demo-train-5", "train", "m1", 186, 48, 0.66, "twenties"),
    Speaker("demo-train-6", "train", "f4", 176, 50, 0.58, "thirties"),
    Speaker("demo-train-7", "train", "m5", 162, 40, 0.52, "sixties"),
    Speaker("demo-train-8", "train", "f3", 190, 68, 0.74, "teens"),
    Speaker("demo-dev-1", "dev", "m3", 160, 52, 0.60, "fifties"),
    Speaker("demo-dev-2", "dev", "f1", 184, 44, 0.68, "thirties"),
    Speaker("demo-test-1", "test", "m1", 168, 36, 0.56, "fourties"),
    Speaker("demo-test-2", "test", "f2", 178, 54, 0.64, "twenties"),
]


def synth(text: str, spk: Speaker) -> np.ndarray:
    """espeak-ng -> trimmed, peak-normalised float64 mono at 16 kHz."""
    x, sr = espeak_wav(spk.espeak_args(), text)
    assert sr == ESPEAK_SR, sr
    x = trim(x, sr, pad_s=0.1)
    x = soxr.resample(x, sr, SR, quality="HQ")
    return x * (spk.gain / (float(np.max(np.abs(x))) or 1.0))


def mp3_bytes(x: np.ndarray) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.clip(x, -1.0, 1.0), SR, format="MP3",
             bitrate_mode=MP3_BITRATE_MODE, compression_level=MP3_COMPRESSION)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Selection
# ---------------------------------------------------------------------------------------------
@dataclass
class Clip:
    split: str
    speaker: Speaker
    sentence: str
    pattern: str
    audio: np.ndarray
    path: str = ""


def fits(text: str, x: np.ndarray) -> bool:
    dur = len(x) / SR
    chars = sum(len(w) for w in words_of(text))
    return MIN_S <= dur <= MAX_S and chars / dur <= MAX_CPS


def choose(cands: list[tuple[str, str]]) -> tuple[list[Clip], dict]:
    rng = np.random.default_rng(seed_of(SEED, "choose"))
    order = [int(i) for i in rng.permutation(len(cands))]
    by_split = {s: [p for p in SPEAKERS if p.split == s] for s in ("train", "dev", "test")}
    stats = Counter()
    clips: list[Clip] = []
    used: set[int] = set()

    # train: greedy, favouring sentences whose words have been heard least so far
    counts: Counter[str] = Counter()
    pools = {p: [j for j in order if cands[j][1] == p] for p in PATTERNS}
    share = {p: w / sum(PATTERNS.values()) for p, w in PATTERNS.items()}
    n_pat: Counter[str] = Counter()
    for i in range(N_TRAIN):
        spk = by_split["train"][i % len(by_split["train"])]
        while True:
            # the pattern furthest behind its share (that still has sentences left)
            pat = max((p for p in PATTERNS if pools[p]), key=lambda p: share[p] * (i + 1) - n_pat[p])
            pool = pools[pat]
            sample = [pool[int(k)] for k in rng.choice(len(pool), size=min(48, len(pool)), replace=False)]
            best = max(sample, key=lambda j: (np.mean([1.0 / (1 + counts[w]) for w in words_of(cands[j][0])]), -j))
            pool.remove(best)
            text, pattern = cands[best]
            x = synth(text, spk)
            if fits(text, x):
                break
            stats["train_rejected_duration"] += 1
        n_pat[pat] += 1
        used.add(best)
        counts.update(words_of(text))
        clips.append(Clip("train", spk, text, pattern, x))

    # dev / test: unseen sentences made only of words heard >= MIN_TRAIN_COUNT times in train
    train_keys = {normalized_text(c.sentence) for c in clips}
    held_keys: set[str] = set()
    rest = iter([j for j in order if j not in used])
    for split, n in (("dev", N_DEV), ("test", N_TEST)):
        spks = by_split[split]
        for i in range(n):
            spk = spks[i % len(spks)]
            while True:
                j = next(rest)
                text, pattern = cands[j]
                key = normalized_text(text)
                if key in train_keys or key in held_keys:
                    continue
                if any(counts[w] < MIN_TRAIN_COUNT for w in words_of(text)):
                    stats[f"{split}_rejected_coverage"] += 1
                    continue
                x = synth(text, spk)
                if fits(text, x):
                    break
                stats[f"{split}_rejected_duration"] += 1
            held_keys.add(key)
            clips.append(Clip(split, spk, text, pattern, x))
    return clips, {"rejections": dict(stats), "train_word_counts": counts}


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def build(out: Path) -> dict:
    t0 = time.perf_counter()
    cands = candidates(25_000)
    t_cands = time.perf_counter() - t0
    clips, info = choose(cands)
    t_synth = time.perf_counter() - t0 - t_cands

    # CV-like clip numbers: increasing, in a shuffled order over the splits
    rng = np.random.default_rng(seed_of(SEED, "numbers"))
    num = 40_120_000
    for k in rng.permutation(len(clips)):
        num += int(rng.integers(17, 2900))
        clips[int(k)].path = f"common_voice_{LOCALE}_{num}.mp3"
    with ThreadPoolExecutor(max_workers=2) as ex:
        mp3s = list(ex.map(lambda c: mp3_bytes(c.audio), clips))
    t_enc = time.perf_counter() - t0 - t_cands - t_synth

    votes = np.random.default_rng(seed_of(SEED, "votes"))
    rows: dict[str, list[list[str]]] = {"train": [], "dev": [], "test": []}
    for c in clips:
        up, down = int(votes.integers(2, 5)), int(votes.integers(0, 2))
        rows[c.split].append([client_id(c.speaker.name), c.path, sentence_id(c.sentence), c.sentence, "",
                              str(up), str(down), c.speaker.age, CV17_GENDER[c.speaker.gender], "", "",
                              LOCALE, ""])
    # clip_durations.tsv: what a decoder returns (== the PCM length with a Xing/LAME header, as
    # ABR writes; CBR has none, so there the encoder delay/padding adds ~0.1 s)
    durations = sorted([c.path, str(int(round(1000 * len(sf.read(io.BytesIO(data))[0]) / SR)))]
                       for c, data in zip(clips, mp3s))

    root = out / RELEASE / LOCALE
    if out.exists():
        shutil.rmtree(out)
    (root / "clips").mkdir(parents=True)
    for c, data in zip(clips, mp3s):
        (root / "clips" / c.path).write_bytes(data)
    for split in ("train", "dev", "test"):
        (root / f"{split}.tsv").write_bytes(tsv_bytes(CV17_HEADER, rows[split]))
    (root / "clip_durations.tsv").write_bytes(tsv_bytes(["clip", "duration[ms]"], durations))
    info.update(clips=clips, mp3s=mp3s, n_candidates=len(cands),
                timings={"candidates_s": t_cands, "synth_select_s": t_synth, "encode_s": t_enc})
    (out / "README.md").write_text(readme(clips, mp3s, info), encoding="utf-8")
    info["timings"]["total_s"] = time.perf_counter() - t0
    return info


def coverage(clips: list[Clip]) -> dict:
    train_counts = Counter(w for c in clips if c.split == "train" for w in words_of(c.sentence))
    out = {"train_vocab": len(train_counts), "train_tokens": sum(train_counts.values())}
    for split in ("dev", "test"):
        ws = [w for c in clips if c.split == split for w in words_of(c.sentence)]
        missing = sorted({w for w in ws if w not in train_counts})
        out[split] = {"tokens": len(ws), "types": len(set(ws)), "missing": missing,
                      "min_train_count": min(train_counts[w] for w in ws),
                      "median_train_count": float(np.median([train_counts[w] for w in ws]))}
    return out


def readme(clips: list[Clip], mp3s: list[bytes], info: dict) -> str:
    by = {s: [c for c in clips if c.split == s] for s in ("train", "dev", "test")}
    dur = {s: [len(c.audio) / SR for c in cs] for s, cs in by.items()}
    cov = coverage(clips)
    n_digits = sum(any(ch.isdigit() for ch in c.sentence) for c in by["train"])
    n_digits_held = sum(any(ch.isdigit() for ch in c.sentence) for c in by["dev"] + by["test"])
    L = ["# Demo corpus (`sweaug demo`)", "",
         "Generated by `python scripts/make_demo_sample.py` (deterministic; do not edit by hand: change the "
         "script and re-run). Swedish speech synthesised with espeak-ng, laid out exactly like a Common "
         f"Voice 17.0 release: `{RELEASE}/{LOCALE}/` with `clips/*.mp3`, `train.tsv`, `dev.tsv`, `test.tsv`, "
         "and `clip_durations.tsv`; unquoted TSVs with the v17 header (a release's `validated.tsv`, which sweaug "
         "reads only with `--cv-extra validated`, is left out to save space).",
         "",
         "It exists so that a tiny Whisper (2 layers, d_model 128) trained for a few CPU minutes can transcribe "
         "**held-out** sentences: the text comes from a small Swedish grammar (present tense, V2 word order, "
         "negation, yes/no and wh-questions, modal + infinitive, weather *det*) over a fixed lexicon of "
         f"{cov['train_vocab']} words. Train sentences are chosen so that every word is heard often; dev/test "
         "sentences are new combinations: none occurs in train (compared after sweaug's `normalized_text`, "
         "as the leakage guard does), all are distinct, and every dev/test word occurs at least "
         f"{MIN_TRAIN_COUNT} times in train. Digits are rare ("
         + ", ".join(f"`{t}`" for t in CLOCK_TIMES) + f": {n_digits} train, {n_digits_held} dev/test sentences).", "",
         "| split | clips | speakers | duration (min / mean / max s) | total s |", "|---|---|---|---|---|"]
    for s, cs in by.items():
        d = dur[s]
        L.append(f"| {s} | {len(cs)} | {len({c.speaker.name for c in cs})} | "
                 f"{min(d):.2f} / {np.mean(d):.2f} / {max(d):.2f} | {sum(d):.0f} |")
    L += ["", "Speakers (splits are speaker-disjoint; dev/test voices reuse train voice variants with another "
          "pitch, speed and level):", "", "| speaker | split | espeak-ng args | gender | age | clips |",
          "|---|---|---|---|---|---|"]
    for p in SPEAKERS:
        n = sum(c.speaker == p for c in clips)
        L.append(f"| {p.name} | {p.split} | `{' '.join(p.espeak_args())}` | {CV17_GENDER[p.gender]} | "
                 f"{p.age} | {n} |")
    kbps = 8 * sum(map(len, mp3s)) / sum(len(c.audio) / SR for c in clips) / 1000
    L += ["", f"Audio: 16 kHz mono MP3 written by soundfile/libsndfile (LAME), `bitrate_mode={MP3_BITRATE_MODE!r}`, "
          f"`compression_level={MP3_COMPRESSION}` (about {kbps:.1f} kbit/s, ~{kbps / 8:.2f} KB per second: heavily "
          "compressed, telephone-like, still intelligible; with ~0.45 MB of TSVs it keeps 1,360 clips within a "
          "3 MB budget). Clips are espeak-ng output trimmed to 0.1 s of silence each side, resampled to 16 kHz "
          "(soxr HQ) and peak-normalised to a per-speaker level; `clip_durations.tsv` holds the decoded length.", "",
          "Sentence patterns in train (clips): " + ", ".join(
              f"{p} {n}" for p, n in sorted(Counter(c.pattern for c in by["train"]).items(), key=lambda kv: -kv[1]))
          + ".", "",
          f"Word coverage: dev {cov['dev']['types']} word types, test {cov['test']['types']}; missing from train: "
          f"{len(cov['dev']['missing']) + len(cov['test']['missing'])}; least-heard test word occurs "
          f"{cov['test']['min_train_count']} times in train (median {cov['test']['median_train_count']:.0f}).", "",
          "Examples:", ""]
    for s, cs in by.items():
        L.append(f"- {s}: " + " / ".join(f"\"{c.sentence}\"" for c in cs[:8]))
    L.append("")
    return "\n".join(L)


# ---------------------------------------------------------------------------------------------
# Self-check
# ---------------------------------------------------------------------------------------------
def self_check(out: Path, info: dict) -> list[str]:
    problems: list[str] = []
    clips: list[Clip] = info["clips"]
    root = out / RELEASE / LOCALE
    import csv
    tsv = {}
    for name in ("train", "dev", "test", "clip_durations"):
        with open(root / f"{name}.tsv", encoding="utf-8", newline="") as f:
            tsv[name] = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    dur_ms = {r["clip"]: int(r["duration[ms]"]) for r in tsv["clip_durations"]}
    every = tsv["train"] + tsv["dev"] + tsv["test"]
    for r in every:
        x, sr = sf.read(root / "clips" / r["path"], dtype="float32")
        d = len(x) / sr
        if sr != SR or x.ndim != 1 or not (MIN_S - 0.01 <= d <= MAX_S + 0.15) \
                or abs(d * 1000 - dur_ms[r["path"]]) > 1 or not np.isfinite(x).all():
            problems.append(f"{r['path']}: sr {sr} shape {x.shape} {d:.3f}s vs {dur_ms[r['path']]} ms")
    if len(every) != len(clips) or len(dur_ms) != len(clips):
        problems.append("row counts")
    spk = {s: {r["client_id"] for r in tsv[s]} for s in ("train", "dev", "test")}
    if spk["train"] & spk["dev"] or spk["train"] & spk["test"] or spk["dev"] & spk["test"]:
        problems.append("speakers overlap between splits")
    keys = {s: [normalized_text(r["sentence"]) for r in tsv[s]] for s in ("train", "dev", "test")}
    if set(keys["train"]) & (set(keys["dev"]) | set(keys["test"])):
        problems.append("a dev/test sentence occurs in train")
    if len(set(keys["test"])) != len(keys["test"]) or len(set(keys["dev"])) != len(keys["dev"]):
        problems.append("dev/test sentences not distinct")
    cov = coverage(clips)
    if cov["dev"]["missing"] or cov["test"]["missing"]:
        problems.append(f"coverage: {cov}")
    return problems


def main() -> int:
    global MP3_BITRATE_MODE, MP3_COMPRESSION, N_TRAIN, N_DEV, N_TEST
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=REPO / "sweaug" / "sample" / "demo")
    ap.add_argument("--no-check", action="store_true")
    ap.add_argument("--mp3", nargs=2, metavar=("BITRATE_MODE", "COMPRESSION_LEVEL"),
                    help=f"libsndfile MP3 settings (default {MP3_BITRATE_MODE} {MP3_COMPRESSION})")
    ap.add_argument("--counts", nargs=3, type=int, metavar=("TRAIN", "DEV", "TEST"),
                    help=f"clips per split (default {N_TRAIN} {N_DEV} {N_TEST})")
    args = ap.parse_args()
    if args.mp3:
        MP3_BITRATE_MODE, MP3_COMPRESSION = args.mp3[0], float(args.mp3[1])
    if args.counts:
        N_TRAIN, N_DEV, N_TEST = args.counts
    info = build(args.out)
    clips: list[Clip] = info["clips"]
    t = info["timings"]
    print(f"candidates: {info['n_candidates']} distinct grammar sentences; rejections: {info['rejections']}")
    print(f"timings: candidates {t['candidates_s']:.1f}s, synth+select {t['synth_select_s']:.1f}s, "
          f"encode {t['encode_s']:.1f}s, total {t['total_s']:.1f}s")
    for s in ("train", "dev", "test"):
        cs = [c for c in clips if c.split == s]
        d = [len(c.audio) / SR for c in cs]
        print(f"{s}: {len(cs)} clips, {len({c.speaker for c in cs})} speakers, "
              f"{min(d):.2f}-{max(d):.2f}s (mean {np.mean(d):.2f}s)")
    cov = coverage(clips)
    print(f"coverage: train vocab {cov['train_vocab']} words / {cov['train_tokens']} tokens; "
          + "; ".join(f"{s}: {cov[s]['types']} types, missing {cov[s]['missing']}, min train count "
                      f"{cov[s]['min_train_count']}, median {cov[s]['median_train_count']:.0f}"
                      for s in ("dev", "test")))
    pats = Counter(c.pattern for c in clips if c.split == "train")
    print("train patterns:", dict(sorted(pats.items(), key=lambda kv: -kv[1])))
    audio = sum(map(len, info["mp3s"]))
    total = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    secs = sum(len(c.audio) for c in clips) / SR
    print(f"size: mp3 {audio / 1e6:.3f} MB ({8 * audio / secs / 1000:.1f} kbit/s over {secs:.0f}s), "
          f"total {total / 1e6:.3f} MB")
    if not args.no_check:
        problems = self_check(args.out, info)
        if problems:
            print("SELF-CHECK PROBLEMS:\n  " + "\n  ".join(problems[:20]), file=sys.stderr)
            return 1
        print("self-check ok: every clip decodes, durations match clip_durations.tsv, splits speaker- and "
              "sentence-disjoint, dev/test words all in train")
    return 0


if __name__ == "__main__":
    sys.exit(main())
