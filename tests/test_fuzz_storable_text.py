"""Fuzzing `storable` (smm_daq/storage/strings.py), the text a file name, command line or title
becomes in a session file: any str, lone surrogates (os.fsdecode's stand-ins for bytes that are
not UTF-8, and ones that stand for no byte) and NULs among it, is stored by h5py in an
attribute and a dataset without an exception, and reads back as `storable(value)`, which is
storable unchanged; text HDF5 holds as it is stays as it is.
"""

from __future__ import annotations

import io
import os
import re

import h5py
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from smm_daq.storage.strings import storable, stored_path, text

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None)
ANY_CHAR = st.one_of(st.sampled_from(["\0", "\udcff", "\udc80", "\ud800", "\udfff", "\\", "é"]),
                     st.characters(exclude_categories=()))
NOT_AS_IT_IS = re.compile("[\0\ud800-\udfff]")


@FAST
@given(st.text(ANY_CHAR, max_size=16))
@example("a\0b")  # h5py: "VLEN strings do not support embedded NULLs"
@example(os.fsdecode(b"caf\xe9\xff.h5"))
@example("\ud83d\ude00")  # a pair of surrogates, each alone in a str
def test_any_text_is_stored_and_read_back_as_documented(value: str) -> None:
    stored = storable(value)
    with h5py.File(io.BytesIO(), "w") as f:
        f.attrs["a"] = stored
        f["d"] = stored
        assert text(f.attrs["a"]) == stored and text(f["d"]) == stored
    assert storable(stored) == stored
    if not NOT_AS_IT_IS.search(value):
        assert stored == value


def test_a_byte_not_utf8_reads_the_same_whatever_else_the_text_holds() -> None:
    """A surrogate that stands for no byte beside one that does turned the byte's escape
    \\xff into \\udcff."""
    assert storable("\udcff\ud800") == "\\xff\\ud800"
    assert storable("\ud800\udcff") == "\\ud800\\xff"


def _with_byte_folder(tmp_path) -> bytes:
    """`tmp_path` as bytes, a folder named `r` 0xe9 `ig` made in it (skipped where the file
    system refuses such a name)."""
    home = os.fsencode(tmp_path)
    try:
        os.mkdir(home + b"/r\xe9ig")
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    return home


def test_a_stored_path_is_given_back_as_the_system_names_it(tmp_path) -> None:
    """`stored_path` undoes `storable`'s escape of a byte not UTF-8 in a path, except where
    only the path as stored has its folder (a backslash typed: storable left it as it was)."""
    home = _with_byte_folder(tmp_path)
    os.mkdir(home + b"/typed\\x80")
    byte = os.fsdecode(home + b"/r\xe9ig/p.toml")
    assert stored_path(storable(byte)) == byte
    typed = os.fsdecode(home + b"/typed\\x80/p.toml")
    assert storable(typed) == typed and stored_path(typed) == typed
    assert stored_path("plain/p.toml") == "plain/p.toml"


def test_a_stored_path_is_the_one_whose_file_exists_where_both_folders_do(tmp_path) -> None:
    """Both a folder named with the byte 0xe9 and one typed `r\\xe9ig` exist: the path stored
    is the one whose file is there (the byte's folder was taken whenever it existed, and a
    resume took the calibration file beside another profile)."""
    home = _with_byte_folder(tmp_path)
    os.mkdir(home + b"/r\\xe9ig")
    typed = os.fsdecode(home + b"/r\\xe9ig/p.toml")
    byte = os.fsdecode(home + b"/r\xe9ig/p.toml")
    open(typed, "w").close()
    assert stored_path(storable(typed)) == typed
    os.remove(typed)
    open(byte, "w").close()
    assert stored_path(storable(byte)) == byte
