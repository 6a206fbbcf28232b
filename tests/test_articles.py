"""A message filling in a word (an entry's kind, a file format, a grid's size, an instrument
reply's name) puts "a" or "an" before it as it is read aloud."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.link import parse_float, parse_int
from smm_daq.articles import with_article
from smm_daq.errors import InputError, ProtocolError
from smm_daq.storage.checks import usable_map
from smm_daq.storage.mapdata import MapData


@pytest.mark.parametrize(("word", "said"), [
    ("mmt", "an MMT"), ("mpe", "an MPE"), ("induced", "an induced"), ("import", "an import"),
    ("unreadable", "an unreadable"), ("scan", "a scan"), ("susceptibility", "a susceptibility"),
    ("unidirectional", "a unidirectional"), ("integer", "an integer"),
    ("buffer point count", "a buffer point count"), ("LIA status byte", "an LIA status byte"),
    ("SCPI error code", "a SCPI error code"), ("GCS code", "a GCS code"),
    (8, "an 8"), (80, "an 80"), (11, "an 11"), (18, "an 18"), (11000, "an 11000"),
    (1100, "a 1100"), (110, "a 110"), (2, "a 2"), ("8.5", "an 8.5"), ("0.8", "a 0.8"),
    ("-8", "a -8"), ("1e+06", "a 1e+06"), ("8e-05", "an 8e-05"),
])
def test_the_article_follows_the_first_sound(word, said):
    assert with_article(word) == said


@pytest.mark.parametrize(("parse", "what", "said"), [
    (parse_int, "buffer point count", "expected a buffer point count, got 'x'"),
    (parse_int, "integer", "expected an integer, got 'x'"),
    (parse_float, "number", "expected a number, got 'x'"),
])
def test_an_instrument_reply_refused_names_what_was_expected_with_its_article(parse, what,
                                                                              said):
    with pytest.raises(ProtocolError) as refused:
        parse("x", what=what)
    assert said in str(refused.value)


def test_a_map_too_small_is_said_with_the_article_its_size_takes():
    """An 8-pixel-wide map is "an 8 × 1 map" (unfixed: "a 8 × 1 map")."""
    x = np.arange(8) * 1e-5
    with pytest.raises(InputError, match=r"holds an 8 × 1 map; expected at least 2 × 2"):
        usable_map(MapData(np.ones((1, 8)), x, x[:1], name="line"), "s.h5, entry 'line'")
