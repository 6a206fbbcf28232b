"""Reading the text files people write by hand (instrument profiles, recipes): why one cannot
be read, said in words that point at the fix, with the line and column of a byte that is not
UTF-8 (an editor that saved in Latin-1 or UTF-16) rather than Python's byte offset. UTF-8 with
a byte order mark (Notepad's "UTF-8 with BOM", PowerShell 5's `-Encoding utf8`) is UTF-8."""

from __future__ import annotations

import codecs
from pathlib import Path

from smm_daq.errors import InputError


def read_text_file(path: Path, kind: str, expected: str) -> str:
    """The UTF-8 text of `path`, a `kind` file ("profile", "recipe"); InputError naming the
    file and saying it should be `expected` ("a TOML recipe") otherwise."""
    source = str(path)
    if path.is_dir():
        raise InputError(f"is a directory; expected {expected} file", source=source)
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
