"""Tests for sweaug.build.text (target / normalized text, character checks)."""
import unicodedata

import pytest

from sweaug.build.text import (
    NORMALIZER_VERSION,
    is_empty,
    normalized_text,
    rejected_chars,
    target_text,
)

TRICKY = [
    "",
    "   ",
    "Hej , du !",
    "„Vad sa du?“ frågade hon … och gick.",
    "Stockholm–Göteborg — en resa ‒ kanske",
    "''Citat'' och ‘enkla’ och «franska» ‹här›",
    "so\u00adft\u200bhy\u200cp\u200dh\ufeffen\u00a0\t\nslut",
    "<a<b>c> [[x]] {y} (skratt) ((skratt)) (se ovan) (2019)",
    "e\u200b\u0301 och e\u0301",
    "'\u200b' och ' [noise] '",
    "hej [brus] , du (applåder) .",
    "Det kostar .5 kr , eller 3 ,5 ?",
    "  …  ",
    "Han sa \"hej\" till mig.",
    "A – B - C —D",
    "\x07kontroll\x00tecken",
]


def test_version_is_nonempty_string():
    assert isinstance(NORMALIZER_VERSION, str) and NORMALIZER_VERSION


@pytest.mark.parametrize("raw", TRICKY)
def test_target_text_idempotent(raw):
    once = target_text(raw)
    assert target_text(once) == once


@pytest.mark.parametrize("raw", TRICKY)
def test_normalized_text_idempotent(raw):
    once = normalized_text(raw)
    assert normalized_text(once) == once


@pytest.mark.parametrize("raw", TRICKY)
def test_target_text_is_nfc_and_single_spaced(raw):
    t = target_text(raw)
    assert t == unicodedata.normalize("NFC", t)
    assert "  " not in t and t == t.strip()


def test_nfc_composition():
    assert target_text("Ska\u030ane") == "Skåne"


def test_case_and_punctuation_kept():
    assert target_text("Hej, Anna! Hur mår du?") == "Hej, Anna! Hur mår du?"


@pytest.mark.parametrize("raw, expected", [
    ("„Det är bra“, sa hon.", '"Det är bra", sa hon.'),
    ("“Hej” och ”hej”", '"Hej" och "hej"'),
    ("«Tjena» sa han", '"Tjena" sa han'),
    ("Han sa ''nej'' igen", 'Han sa "nej" igen'),
    ("‘Visst’, sa hon", "'Visst', sa hon"),
    ("‹Visst›", "'Visst'"),
    ("‚Nja‘", "'Nja'"),
    ("Anna’s bok", "Anna's bok"),
])
def test_quotes_unified(raw, expected):
    assert target_text(raw) == expected


def test_bare_double_quotes_common_voice():
    raw = 'Han sa "hej" till mig.'
    assert target_text(raw) == raw
    assert normalized_text(raw) == "han sa hej till mig"
    assert rejected_chars(target_text(raw)) == ""


@pytest.mark.parametrize("raw, expected", [
    ("Stockholm–Göteborg", "Stockholm-Göteborg"),
    ("Stockholm—Göteborg", "Stockholm-Göteborg"),
    ("sidan 10‒12", "sidan 10-12"),
    ("Malmö\u2011Lund", "Malmö-Lund"),
    ("Det var \u2212 5 grader", "Det var - 5 grader"),
    ("Jag kom – och gick", "Jag kom - och gick"),
    ("Jag kom ― och gick", "Jag kom - och gick"),
])
def test_dashes(raw, expected):
    assert target_text(raw) == expected


def test_ellipsis():
    assert target_text("Tja… kanske") == "Tja... kanske"
    assert target_text("Tja …") == "Tja..."


@pytest.mark.parametrize("raw, expected", [
    ("hej\u00a0du", "hej du"),
    ("hej\tdu\n\nigen", "hej du igen"),
    ("  hej   du  ", "hej du"),
    ("hej\u2009du\u202fnu", "hej du nu"),
    ("ord\u200bdelning", "orddelning"),
    ("\ufeffbörjan", "början"),
    ("sam\u00adarbete", "samarbete"),
    ("zero\u200cwidth\u200djoin", "zerowidthjoin"),
])
def test_whitespace_and_invisible_chars(raw, expected):
    assert target_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("hej , du", "hej, du"),
    ("Vad sa du ?", "Vad sa du?"),
    ("Nej !", "Nej!"),
    ("Så här : ett ; två .", "Så här: ett; två."),
    ("Det var .5 mer", "Det var .5 mer"),  # a leading-point number is not glued
])
def test_space_before_punctuation(raw, expected):
    assert target_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Jag vet inte (skratt) riktigt", "Jag vet inte riktigt"),
    ("Tack så mycket (Applåder)", "Tack så mycket"),
    ("Det var ( ohörbart ) i går", "Det var i går"),
    ("(paus) Okej", "Okej"),
    ("Ursäkta (hosta) mig", "Ursäkta mig"),
    ("It was (inaudible) there", "It was there"),
    ("hej [noise] du", "hej du"),
    ("<UNK> och <unk>", "och"),
    ("{brus} jaha", "jaha"),
    ("ett [två] tre", "ett tre"),
    ("hej [noise] , du", "hej, du"),
    ("<a<b>c> kvar", "<a c> kvar"),  # the tag <b> goes; "<a c>" is no tag (a space inside)
])
def test_annotations_removed(raw, expected):
    assert target_text(raw) == expected


@pytest.mark.parametrize("raw", [
    "Boken kom ut (2019) på nytt.",
    "Se tabellen (se ovan).",
    "Hon (som bor i Umeå) kom.",
])
def test_ordinary_parentheses_kept(raw):
    assert target_text(raw) == raw


def test_annotation_set_is_configurable():
    assert target_text("hej (brus) du", annotations={"Brus"}) == "hej du"
    assert target_text("hej (skratt) du", annotations={"brus"}) == "hej (skratt) du"


def test_normalized_lowercase_keeps_diacritics():
    assert normalized_text("Åsa Öberg ÄTER på Café Müller") == "åsa öberg äter på café müller"
    assert normalized_text("STRASSE Straße") == "strasse straße"  # lower(), not casefold()


def test_normalized_removes_punctuation_and_annotations():
    raw = "„Nej!“ sa hon (skratt) – det är ju… [noise] konstigt?"
    assert normalized_text(raw) == "nej sa hon det är ju konstigt"


def test_hyphen_to_space_apostrophe_removed():
    assert normalized_text("Skicka ett e-post-meddelande") == "skicka ett e post meddelande"
    assert normalized_text("Anna’s bok") == "annas bok"


def test_symbols_removed():
    assert normalized_text("Pris: 5 € & moms @ 25") == "pris fem moms tjugofem"


@pytest.mark.parametrize("raw, expected", [
    ("Det hände 1999.", "det hände etttusenniohundranittionio"),
    ("År 2019 var bra", "år tvåtusennitton var bra"),
    ("Jag har 21 katter", "jag har tjugoett katter"),
    ("0 grader", "noll grader"),
    ("Nummer 007", "nummer noll noll sju"),
    ("1000000 kronor", "enmiljon kronor"),
])
def test_integers(raw, expected):
    assert normalized_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Det kostar 10 000 kr", "det kostar tiotusen kr"),
    ("Det kostar 10\u00a0000 kr", "det kostar tiotusen kr"),
    ("1 000 000 invånare", "enmiljon invånare"),
    ("Ring 070 123", "ring noll sjuttio etthundratjugotre"),
    ("År 2019 200 personer", "år tvåtusennitton tvåhundra personer"),
])
def test_thousands_separators(raw, expected):
    assert normalized_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Han kom 1:a", "han kom första"),
    ("Den 2:a maj", "den andra maj"),
    ("Hon blev 3:e", "hon blev tredje"),
    ("Den 21:a juni", "den tjugoförsta juni"),
    ("Den 1:A", "den första"),
])
def test_ordinals(raw, expected):
    assert normalized_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Räntan är 3,5", "räntan är tre komma fem"),
    ("Räntan är 3.5", "räntan är tre komma fem"),
    ("Pi är 3,14.", "pi är tre komma fjorton"),
    ("Det var 2,05 meter", "det var två komma noll fem meter"),
    ("1,2,3 kör", "ett två tre kör"),
])
def test_decimals(raw, expected):
    assert normalized_text(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("Ökade med 5 %", "ökade med fem procent"),
    ("Ökade med 5%", "ökade med fem procent"),
    ("Ökade med 5\u00a0%", "ökade med fem procent"),
    ("Räntan är 3,5 % nu", "räntan är tre komma fem procent nu"),
])
def test_percent(raw, expected):
    assert normalized_text(raw) == expected


def test_finnish_numbers():
    raw = "Vuonna 2019 työttömyys oli 6,5 %."
    assert normalized_text(raw, language="fi") == (
        "vuonna kaksituhattayhdeksäntoista työttömyys oli kuusi pilkku viisi prosenttia")
    # Swedish ":a" ordinals are a Swedish convention only.
    assert "första" not in normalized_text("1:a", language="fi")


def test_unsupported_language_keeps_digits():
    assert normalized_text("Uimhir 42, 3,5 %", language="ga") == "uimhir 42 3 5"


@pytest.mark.parametrize("text", [
    "Hej, jag heter Åsa Öberg!",
    'Han sa "hej" till mig.',
    "Café Müller à la carte, Ångström (1814-1874).",
    "5 % & 10/20 + 3; ok? § 4 och 20 °C: 'ja'",
])
def test_rejected_chars_ok(text):
    assert rejected_chars(text) == ""


@pytest.mark.parametrize("text, expected", [
    ("Привет Sverige", "Пвеирт"),
    ("Hej 😀", "😀"),
    ("漢字 text", "字漢"),
    ("mejl@exempel.se #tagg", "#@"),
    ("a*b_c=d|e\\f~g^h", "*=\\^_|~"),
    ("kontroll\x07tecken\ttab", "\x07\t"),
    ("Søren Ærø ñ", "Æñø"),
    ("rest [x] <y>", "<>[]"),
])
def test_rejected_chars_bad(text, expected):
    assert rejected_chars(text) == expected


def test_rejected_chars_non_swedish_latin():
    assert rejected_chars("Hyvää päivää, Søren Ærø ñ ç", language="fi") == ""
    assert rejected_chars("Hyvää Привет", language="fi") == "Пвеирт"


@pytest.mark.parametrize("raw, expected", [
    ("", True),
    ("   \u00a0\t", True),
    ("[noise] <UNK> (skratt)", True),
    ("... - !?", True),
    ('"" \u200b', True),
    ("hej", False),
    ("42", False),
    ("(se ovan)", False),
])
def test_is_empty(raw, expected):
    assert is_empty(raw) is expected
