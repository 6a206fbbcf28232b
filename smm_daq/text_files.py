"""Reading the text files people write by hand (instrument profiles, recipes): why one cannot
be read, said in words that point at the fix, with the line and column of a byte that is not
UTF-8 (an editor that saved in Latin-1 or UTF-16) rather than Python's byte offset. UTF-8 with
a byte order mark (Notepad's "UTF-8 with BOM", PowerShell 5's `-Encoding utf8`) is UTF-8. Also
the decoding and field checks shared by the grain lists other tools write (`decode_text`,
`empty_field_column`, `load_json`)."""

from __future__ import annotations

import codecs
import functools
import json
import json.scanner
import os
import re
from pathlib import Path
from typing import Any

from smm_daq.errors import InputError


def require_file(path: Path, kind: str, expected: str) -> None:
    """InputError naming `path` unless it is a regular file: a directory, a device such as
    /dev/null or a pipe (whose read would wait forever) is none. `kind` names what is missing
    ("no such grain file"); `expected` says what should be there."""
    try:
        if path.is_file():
            return
        what = ("is a directory" if path.is_dir()
                else "is not a regular file (a device or a pipe)" if path.exists()
                else f"no such {kind} file")
    except OSError as exc:  # a name too long for the file system, a folder not to be read
        what = f"cannot be looked at ({exc.strerror or exc})"
    raise InputError(f"{what}; expected {expected}", source=str(path))


def read_text_file(path: Path, kind: str, expected: str) -> str:
    """The UTF-8 text of `path`, a `kind` file ("profile", "recipe"); InputError naming the
    file and saying it should be `expected` ("a TOML recipe") otherwise."""
    source = str(path)
    try:
        directory, special = path.is_dir(), path.exists() and not path.is_file()
    except OSError as exc:  # a name too long for the file system, a folder not to be read
        raise InputError(f"cannot read the {kind} ({exc.strerror or exc}); expected {expected}",
                         source=source) from None
    if directory:
        raise InputError(f"is a directory; expected {expected} file", source=source)
    if special:  # a pipe's read would wait forever
        raise InputError(f"is not a regular file (a device or a pipe); expected {expected} "
                         "file", source=source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{kind} file not found; expected {expected}", source=source) from None
    except OSError as exc:
        raise InputError(f"cannot read the {kind} ({exc.strerror or exc}); expected {expected}",
                         source=source) from None
    data = data.removeprefix(codecs.BOM_UTF8)  # Windows editors may begin UTF-8 with one
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise InputError(f"is not UTF-8 text (byte 0x{data[exc.start]:02x}); expected {expected} "
                         "saved as UTF-8", source=f"{source}, line {line}, column {column}"
                         ) from None


# the byte-order marks `decode_text` reads UTF-32 and UTF-16 after (their NUL bytes are text)
UNICODE_BOMS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


def decode_text(data: bytes) -> str:
    """UTF-32 or UTF-16 after its byte-order mark (UTF-32's first, which begins as UTF-16's
    little-endian one does); else UTF-8 (a byte-order mark dropped) when the bytes are valid
    UTF-8, else latin-1, in which every byte is a character."""
    for marks, codec in (((codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE), "utf-32"),
                         ((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE), "utf-16")):
        if data.startswith(marks):
            try:
                return data.decode(codec)
            except UnicodeDecodeError:
                pass  # a latin-1 file that happens to start with ÿþ: read as such below
    try:
        return data.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def text_lines(text: str) -> list[str]:
    """The lines of `text`, broken at LF, CR LF and CR alone, as editors show them.
    `str.splitlines` breaks at more (NEL U+0085, form feed, U+2028, ...): byte 0x85 is the
    "…" of a Windows editor's comment, which read as latin-1 would end the comment there,
    read its rest as data and shift every later line number."""
    lines = _LINE_BREAK.split(text)
    return lines[:-1] if lines[-1] == "" else lines


_LINE_BREAK = re.compile(r"\r\n|\r|\n")


SHOWN_CHARS = 60  # of a value a message quotes: a cell of 4,300 digits is no message


def shown(value: object) -> str:
    """`repr(value)` for a message, cut after SHOWN_CHARS characters with how many there were:
    a value read from a file (a cell of thousands of digits, a list of 100,000 vertices) would
    otherwise fill screens, and the message's "expected ..." lie far beyond them."""
    text = repr(value)
    if len(text) <= SHOWN_CHARS:
        return text
    return f"{text[:SHOWN_CHARS]}... ({len(text):,} characters)"


QUOTED_CHARS = 200  # a profile's or recipe's value quoted whole: a 3 × 3 matrix fits


def quoted(value: object) -> str:
    """`repr(value)` for a message about a key's value: whole up to QUOTED_CHARS characters
    (a matrix of coil calibrations reads better whole than `shown` cuts it), else as `shown`
    cuts it (an integer of 400 digits, a text of thousands of characters)."""
    text = repr(value)
    return text if len(text) <= QUOTED_CHARS else shown(value)


def path_shown(path: str | os.PathLike[str]) -> str:
    """A path as a message quotes it: as typed, between single quotes. Not `repr`, which
    doubles a Windows path's backslashes, puts double quotes around a name with an apostrophe
    and writes a Path as PosixPath('...'); only what would break the message's line or could
    not be printed (a control character, a name's undecodable byte) is escaped, as `repr`
    escapes it."""
    text = os.fspath(path)
    return "'" + "".join(c if c.isprintable() else repr(c)[1:-1] for c in text) + "'"


def is_number(text: str) -> bool:
    """Whether `text` reads as a float (as `float` reads it: also nan, inf, 1e-6)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


_EMPTY_FIELD = re.compile(r"(?:^|,)[ \t]*(?=,)")  # a field with nothing in it before a comma


def empty_field_column(line: str) -> int | None:
    """The 1-based column of the comma that closes an empty field (`1e-6,,2e-6`), or None.
    Splitting such a line on commas and spaces would skip the field and read every later
    value one column along; a trailing comma is not an empty field."""
    empty = _EMPTY_FIELD.search(line)
    return None if empty is None else empty.end() + 1


# what a JSON or TOML integer of more digits than Python converts (4,300) is refused as
TOO_MANY_DIGITS = "an integer of thousands of digits, more than any number in it can have"


def load_json(text: str, *, unique_keys: bool = False) -> Any:
    """`json.loads`, with arrays or objects nested deeper than Python's parser follows (a
    RecursionError, as from a file of 100,000 '[') and an integer longer than Python converts
    (a plain ValueError) raised as the JSONDecodeError of any other malformed JSON, at the
    start of the text. With `unique_keys`, an object naming a key twice is a JSONDecodeError
    too, at the second: `json.loads` keeps the last silently, so a hand-edited file's first
    value (a first list of mask shapes, a scan height) would go unread without a word."""
    hook = functools.partial(_unique, text) if unique_keys else None
    try:
        return json.loads(text, object_pairs_hook=hook)
    except RecursionError:
        raise json.JSONDecodeError("arrays or objects nested too deep to read", text, 0) from None
    except json.JSONDecodeError:
        raise
    except ValueError:
        raise json.JSONDecodeError(TOO_MANY_DIGITS, text, 0) from None


def _unique(text: str, pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The object of `pairs`; JSONDecodeError where the text first names a key a second time
    in one object when one repeats."""
    if len({key for key, _ in pairs}) == len(pairs):
        return dict(pairs)
    keys = [key for key, _ in pairs]
    key, at = _named_twice(text) or (next(k for k in keys if keys.count(k) > 1), 0)
    raise json.JSONDecodeError(
        f"key {shown(key)} given twice in one object (JSON readers keep only the last, "
        "the first unread: give each key once)", text, at)


class _NamedTwice(Exception):
    """A key met a second time in one object, where its second naming begins."""

    def __init__(self, key: str, at: int) -> None:
        super().__init__(key, at)
        self.key, self.at = key, at


def _named_twice(text: str) -> tuple[str, int] | None:
    """The first key, in the order of the text, that its object names twice, and where the
    second naming begins. Only the keys' places tell it: a search for the key's spelling would
    also find it in another object (nested ones share names), inside another key (`"a\\"x"`)
    or miss it spelled with escapes (`"\\u0061"`); so the text is parsed again, by `json`'s
    pure-Python scanner, whose objects are read here key by key. Only a file already found
    to name a key twice is; None where that scanner cannot follow its nesting."""
    match_space = json.decoder.WHITESPACE.match

    def parse_object(s_and_end: tuple[str, int], strict: bool, scan_once: Any,
                     *_: Any) -> tuple[dict, int]:
        s, at = s_and_end
        seen: set[str] = set()
        at = match_space(s, at).end()
        while s[at] != "}":
            key, end = json.decoder.scanstring(s, at + 1, strict)
            if key in seen:
                raise _NamedTwice(key, at)
            seen.add(key)
            at = match_space(s, match_space(s, end).end() + 1).end()  # past the ':'
            at = match_space(s, scan_once(s, at)[1]).end()  # past the value
            if s[at] == ",":
                at = match_space(s, at + 1).end()
        return {}, at + 1

    decoder = json.JSONDecoder()
    decoder.parse_object = parse_object  # type: ignore[assignment]
    try:
        json.scanner.py_make_scanner(decoder)(text, match_space(text, 0).end())
    except _NamedTwice as named:
        return named.key, named.at
    except (RecursionError, ValueError):  # nested deeper than the pure-Python scanner goes
        pass
    return None
