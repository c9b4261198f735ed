"""Text normalisation for the Swedish Whisper corpus.

Two views of every transcript:

* :func:`target_text` - the orthographic training target (case and punctuation
  kept, typography unified, annotations removed).
* :func:`normalized_text` - a lossy form for WER and train/test leakage matching
  (lower case, numbers spelled out, no punctuation).

Bump :data:`NORMALIZER_VERSION` whenever the output of either function changes.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Iterable

NORMALIZER_VERSION = "sv-2"  # sv-2: Swedish number words re-spelled alike; only <tag>s removed

#: Words that, alone inside parentheses, mark a non-speech annotation.
ANNOTATION_WORDS = frozenset({
    "skratt", "skrattar", "applåder", "ohörbart", "ohörbar", "paus", "hosta",
    "hostar", "harkling", "suck", "musik", "sorl", "oklart", "inaudible",
    "laughter", "laughs", "applause", "noise", "cough", "music", "pause",
})

_DOUBLE_QUOTES = "\u201e\u201c\u201d\u201f\u00ab\u00bb\u2033"     # „ “ ” ‟ « » ″
_SINGLE_QUOTES = "\u2018\u2019\u201a\u201b\u2039\u203a\u2032\u00b4`"  # ‘ ’ ‚ ‛ ‹ › ′ ´ `
_DASHES = "\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe58\ufe63\uff0d"
_TYPOGRAPHY = str.maketrans(
    {**{c: '"' for c in _DOUBLE_QUOTES}, **{c: "'" for c in _SINGLE_QUOTES},
     **{c: "-" for c in _DASHES}, "\u2026": "..."})

#: ``[...]``, ``{...}`` and a tag: ``<`` + a word (letter first; letters, digits, ``_``, ``-``;
#: optional ``/`` either end) + ``>`` with nothing else inside ("<unk>", "<noise>", "<sil>",
#: "<v-noise>", "</s>"). A comparison sign ("< 5 och >") is text, not an annotation.
_BRACKETED = re.compile(r"\[[^\[\]]*\]|\{[^{}]*\}|</?[^\W\d_][\w-]*/?>")
_PARENS = re.compile(r"\(([^()]*)\)")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+(?=[,.!?:;](?!\d))")

#: Explicitly allowed non-letter characters (see :func:`rejected_chars`).
ALLOWED_PUNCT = frozenset(".,!?:;\"'-()%&/+§°")
#: Non-ASCII letters allowed in Swedish text (å ä ö plus common loanword letters).
SV_EXTRA_LETTERS = frozenset("åäöÅÄÖéÉèÈüÜáÁàÀ")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

_PERCENT_WORDS = {"sv": "procent", "fi": "prosenttia", "en": "percent",
                  "da": "procent", "no": "prosent", "de": "prozent"}
_THOUSANDS = re.compile(r"(?<![0-9])(?<![0-9][.,])[1-9][0-9]{0,2}(?: [0-9]{3})+(?![0-9])")
_ORDINAL_SV = re.compile(r"(?<![0-9])([0-9]+):[ae]\b")
_PERCENT = re.compile(r"([0-9]) ?%")
_DECIMAL = re.compile(r"(?<![0-9.,])([0-9]+)[.,]([0-9]+)(?![.,]?[0-9])")
_INTEGER = re.compile(r"[0-9]+")


def target_text(raw: str, *, annotations: Iterable[str] | None = None) -> str:
    """Return the orthographic Whisper training target for ``raw``.

    Steps: NFC; drop invisible format characters (zero-width space/joiners,
    BOM, soft hyphen, bidi marks: Unicode category Cf); typographic quotes ->
    ``"`` / ``'`` (also ``''`` -> ``"``, acute accent/backtick -> ``'``); every
    dash variant -> ``-`` (surrounding spacing is preserved, so "A–B" -> "A-B"
    and "A – B" -> "A - B"); "…" -> "..."; remove ``[..]`` and ``{..}`` wholesale, tags
    ``<word>`` ("<unk>", "<noise>", "</s>": no space inside; a bare ``<`` or ``>`` such as
    "< 5 och > 2" is kept, and :func:`rejected_chars` rejects it in training splits) and
    ``(word)`` when *word* (case-insensitive) is in
    ``annotations`` (default :data:`ANNOTATION_WORDS`); collapse all whitespace
    to single spaces; drop spaces before ``, . ! ? : ;`` (unless a digit
    follows, e.g. " .5"); strip. Idempotent.
    """
    words = ANNOTATION_WORDS if annotations is None else {a.lower() for a in annotations}
    text = unicodedata.normalize("NFC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = text.translate(_TYPOGRAPHY).replace("''", '"')

    def _drop_annotation(m: re.Match) -> str:
        return " " if m.group(1).strip().lower() in words else m.group(0)

    previous = None
    while previous != text:  # loop: removing "[b]" in "[a[b]c]" exposes "[a c]"
        previous = text
        text = _BRACKETED.sub(" ", text)
        text = _PARENS.sub(_drop_annotation, text)
    text = " ".join(text.split())
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    return unicodedata.normalize("NFC", text)


def _converter_lang(language: str) -> str | None:
    """Return the num2words language code for ``language`` or None if unsupported."""
    from num2words import CONVERTER_CLASSES
    for code in (language, language.replace("-", "_"), language[:2]):
        if code in CONVERTER_CLASSES:
            return code
    return None


def _spell(digits: str, lang: str, ordinal: bool = False) -> str:
    """Spell a digit string as one word; leading zeros are read as zero-words."""
    from num2words import num2words
    stripped = digits.lstrip("0")
    zeros = len(digits) - len(stripped)
    parts = [num2words(0, lang=lang)] * (zeros if stripped else max(zeros - 1, 0))
    try:
        kwargs = {"to": "ordinal"} if ordinal else {}
        parts.append(num2words(int(stripped or "0"), lang=lang, **kwargs))
    except (OverflowError, NotImplementedError, ValueError, TypeError):
        return f" {digits} "
    return " " + " ".join(p.replace(" ", "").replace("-", "") for p in parts) + " "


def _spell_numbers(text: str, language: str) -> str:
    """Replace numerals in lower-cased ``text`` by words (see normalized_text)."""
    lang = _converter_lang(language)
    if lang is None:
        return text
    from num2words import CONVERTER_CLASSES
    text = _THOUSANDS.sub(lambda m: m.group(0).replace(" ", ""), text)
    if lang == "sv":
        text = _ORDINAL_SV.sub(lambda m: _spell(m.group(1), lang, ordinal=True), text)
    percent = _PERCENT_WORDS.get(lang.split("_")[0])
    if percent:
        text = _PERCENT.sub(rf"\1 {percent} ", text)
    point = getattr(CONVERTER_CLASSES[lang], "pointword", None)
    if point:
        text = _DECIMAL.sub(
            lambda m: f"{_spell(m.group(1), lang)} {point.lower()} {_spell(m.group(2), lang)}",
            text)
    return _INTEGER.sub(lambda m: _spell(m.group(0), lang), text)


_SV_UNITS = {"ett": 1, "två": 2, "tre": 3, "fyra": 4, "fem": 5, "sex": 6, "sju": 7, "åtta": 8,
             "nio": 9}
_SV_TEENS = {"tio": 10, "elva": 11, "tolv": 12, "tretton": 13, "fjorton": 14, "femton": 15,
             "sexton": 16, "sjutton": 17, "arton": 18, "aderton": 18, "nitton": 19}
_SV_TENS = {"tjugo": 20, "trettio": 30, "fyrtio": 40, "förtio": 40, "femtio": 50, "sextio": 60,
            "sjuttio": 70, "åttio": 80, "nittio": 90}
_SV_SCALES = {"hundra": 100, "tusen": 1000, "miljon": 10**6, "miljoner": 10**6,
              "miljard": 10**9, "miljarder": 10**9, "biljon": 10**12, "biljoner": 10**12}
_SV_MORPHEME = re.compile("|".join(sorted(
    [*_SV_UNITS, *_SV_TEENS, *_SV_TENS, *_SV_SCALES, "en", "noll"], key=len, reverse=True)))


def _sv_below100(ms: list[str]) -> int | None:
    """Value of ``[unit|teen|ten]`` or ``[ten, unit|"en"]`` ("tjugoett", "tjugoen"), else None."""
    if len(ms) == 1:
        return _SV_UNITS.get(ms[0]) or _SV_TEENS.get(ms[0]) or _SV_TENS.get(ms[0])
    if len(ms) == 2 and ms[0] in _SV_TENS and (ms[1] in _SV_UNITS or ms[1] == "en"):
        return _SV_TENS[ms[0]] + _SV_UNITS.get(ms[1], 1)
    return None


def _sv_value(ms: list[str]) -> int | None:
    """Value of a morpheme sequence by its largest scale word: ``left * scale + right``
    with ``right < scale``; ``left`` is optional before "hundra"/"tusen" ("hundra" = 100) and
    may be 1-99 before "hundra" (year readings: "nittonhundranittio" = 1990)."""
    scales = [_SV_SCALES[m] for m in ms if m in _SV_SCALES]
    if not scales:
        return _sv_below100(ms)
    top = max(scales)
    i = next(k for k, m in enumerate(ms) if _SV_SCALES.get(m) == top)
    left, right = ms[:i], ms[i + 1:]
    if top == 100:
        lv = _sv_below100(left) if left else 1
    elif top == 1000:
        lv = _sv_value(left) if left else 1
    else:  # "en miljon", "två miljoner": the count is required
        lv = 1 if left in (["en"], ["ett"]) else _sv_value(left) if left else None
    rv = _sv_value(right) if right else 0
    if lv is None or rv is None or not 1 <= lv < 1000 or rv >= top:
        return None
    return lv * top + rv


def sv_number_value(word: str) -> int | None:
    """The integer a Swedish cardinal number word stands for, or None if ``word`` is not one.

    Compounds as Swedish writes them ("tvåtusentjugofyra", "etthundratjugo", "ettusen" or
    num2words' "etttusen"), bare "hundra"/"tusen", year readings ("nittonhundranittio" = 1990),
    "fyrtio"/"förtio", "arton"/"aderton", "tjugoett"/"tjugoen", and "miljon(er)", "miljard(er)",
    "biljon(er)" with their count ("enmiljon", "tvåmiljoner"). "noll" only alone; "en" alone
    (the article) and ordinals ("första", "tredje") are not numbers here.
    """
    word = re.sub(r"(?<!t)ettusen", "etttusen", word)
    ms, pos = [], 0
    while pos < len(word):
        m = _SV_MORPHEME.match(word, pos)
        if m is None:
            return None
        ms.append(m.group(0))
        pos = m.end()
    if ms == ["noll"]:
        return 0
    return None if not ms or "noll" in ms else _sv_value(ms)


def _canonical_sv_numbers(text: str) -> str:
    """Re-spell every Swedish number word of space-separated ``text`` as num2words spells the
    number's digits (the same form :func:`_spell` gives), so "hundra", "etthundra" and "100"
    all read "etthundra". Neighbouring words form one number when one of them is a bare scale
    word and together they read as one ("två miljoner" -> "tvåmiljoner", "ett hundra tjugo" ->
    "etthundratjugo"); "ett två tre" stays three numbers."""
    from num2words import num2words

    tokens, out, i = text.split(), [], 0
    while i < len(tokens):
        end = i + 1
        while end < len(tokens) and (tokens[end] in _SV_SCALES or tokens[end - 1] in _SV_SCALES):
            end += 1
        for k in range(end, i, -1):
            value = sv_number_value("".join(tokens[i:k]))
            if value is not None:
                word = num2words(value, lang="sv").replace(" ", "").replace("-", "")
                if sv_number_value(word) == value:  # num2words' spelling reads back
                    out.append(word)
                    i = k
                    break
        else:
            out.append(tokens[i])
            i += 1
    return " ".join(out)


def normalized_text(text: str, language: str = "sv") -> str:
    """Return the matching form of ``text``: ``target_text`` + the rules below.

    * ``str.lower()`` (not casefold, so "ß" survives); diacritics are kept
      ("Åsa Öberg" -> "åsa öberg").
    * Numbers via num2words in ``language`` (unsupported language: digits kept);
      each number becomes one word with num2words' internal spaces/hyphens
      removed ("1999" -> "etttusenniohundranittionio"; years are plain integers).
      Digit groups separated by a single space are one number ("10 000" ->
      "tiotusen"; a first group starting with 0 is not joined: "070 123").
      Swedish ordinals "1:a", "3:e", "21:a" -> "första", "tredje", "tjugoförsta".
      Percent "5 %"/"5%" -> "fem procent". Decimals with comma or point: integer
      part, the language's point word, fraction read as an integer ("3,5" ->
      "tre komma fem", "3,14" -> "tre komma fjorton"; so "14.30" reads as a
      decimal too). Leading zeros are read as zeros ("07" -> "noll sju").
      "kr" etc. are left alone.
    * Swedish (``language`` "sv"): number *words* are re-spelled the way the digits are, so
      both sides of a comparison read alike (:func:`sv_number_value`): "hundra", "etthundra"
      and "100" -> "etthundra"; "nittonhundranittio", "ettusenniohundranittio" and "1990" ->
      "etttusenniohundranittio"; "två miljoner" and "2000000" -> "tvåmiljoner"; "fyrtio" ->
      "förtio" (num2words' spellings). Ordinals, "en" alone and "1:a" -> "första" stay.
    * Apostrophes are deleted ("Anna's" -> "annas"); every other punctuation (P*),
      symbol (S*) or control character becomes a space, so hyphenated words split
      ("e-post" -> "e post"). Whitespace is collapsed.
    """
    text = _spell_numbers(target_text(text).lower(), language)
    text = text.replace("'", "")
    text = "".join(" " if unicodedata.category(ch)[0] in "PSC" else ch for ch in text)
    if _converter_lang(language) == "sv":
        return _canonical_sv_numbers(text)
    return " ".join(text.split())


def rejected_chars(text: str, language: str = "sv") -> str:
    """Return the sorted unique characters of ``text`` outside the allowed set.

    Call this on ``target_text`` output. Allowed: ASCII letters and digits 0-9,
    the plain space U+0020 (no tabs/newlines: they never survive target_text),
    :data:`ALLOWED_PUNCT` (``. , ! ? : ; " ' - ( ) % & / +`` and ``§ °``), and
    letters: for "sv" only :data:`SV_EXTRA_LETTERS` (å ä ö é è ü á à, both cases);
    for any other language every letter whose Unicode name starts with "LATIN".
    Everything else (Cyrillic, CJK, emoji, ``@ # * _ = | \\ ~ ^ [ ] < >``,
    control characters) is rejected. Returns "" if the text is acceptable.
    """
    def ok(ch: str) -> bool:
        if ch in _ASCII_ALNUM or ch == " " or ch in ALLOWED_PUNCT:
            return True
        if language == "sv":
            return ch in SV_EXTRA_LETTERS
        return ch.isalpha() and unicodedata.name(ch, "").startswith("LATIN")
    return "".join(sorted({ch for ch in text if not ok(ch)}))


def is_empty(text: str) -> bool:
    """True if ``target_text(text)`` contains no letter or digit (any script)."""
    return not any(ch.isalnum() for ch in target_text(text))
