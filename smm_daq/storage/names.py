"""What makes an entry name usable, for every writer of entries and the command line."""

from __future__ import annotations

ENTRY_NAME_RULE = ("a non-empty name other than '.' or '..', without '/', control characters "
                   "(a line break) or spaces at either end")


def entry_name_usable(name: object) -> bool:
    """A single HDF5 name that reads back as typed, in a message or a listing: non-empty, no
    '/', not '.' or '..', no control characters, no spaces at either end."""
    return (isinstance(name, str) and bool(name) and "/" not in name
            and name not in (".", "..") and name == name.strip()
            and all(c.isprintable() for c in name))
