"""The indefinite article before a word a message fills in: "an induced entry", "an MMT
result", "an 8 × 8 grid". Chosen by the word's first sound as read aloud, not its first
letter: "a unidirectional", "an LIA", "an 11 µm layer"."""

from __future__ import annotations

import re

SAID_AS = {"mmt": "MMT", "mpe": "MPE"}  # words messages fill in (kinds, formats) in capitals
SPOKEN_AS_WORDS = ("SCPI",)  # capitals read as a word ("skippy"), not letter by letter
LETTERS_AN = "AEFHILMNORSX"  # capitals whose names start with a vowel sound ("ef", "em")
CONSONANT_U = ("uni", "use", "usu", "uti", "ure", "uro")  # "u" read "you"
_NUMBER = re.compile(r"\d[\d,]*")  # ("-8": "minus eight")


def with_article(word: object) -> str:
    """`word` (a kind, a format, a number) after "a" or "an", as it is read aloud; a kind or
    format said in capitals (`SAID_AS`) is written so."""
    text = str(word)
    said = SAID_AS.get(text, text)
    return f"{'an' if _vowel_sound(said) else 'a'} {said}"


def _vowel_sound(text: str) -> bool:
    number = _NUMBER.match(text)
    if number:  # 8, 80, 800; 11 and 18, 11 000, 11 000 000 ("eleven thousand")
        digits = number.group(0).replace(",", "")
        return digits.startswith("8") or (len(digits) % 3 == 2 and digits[:2] in ("11", "18"))
    if text[:2].isupper() and not text.startswith(SPOKEN_AS_WORDS):  # letter by letter
        return text[0] in LETTERS_AN
    lower = text.lower()
    if lower.startswith(CONSONANT_U) or lower.startswith(("one", "once", "eu")):
        return False
    return lower.startswith(("hour", "honest")) or lower[:1] in tuple("aeiou")
