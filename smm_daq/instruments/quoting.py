"""How an error message quotes what an instrument was sent or answered: a leaf module, so that
both the links (`drivers.link`, which re-exports `shown`) and the make-safe path's budget
(`loss_budget`, which the links import) quote alike."""

from __future__ import annotations

SHOWN_CHARACTERS = 60  # of a reply or command quoted in an error message


def shown(reply: str | list[str]) -> str:
    """A reply (or a command) as an error message quotes it: whole when short, else its start
    and length (an overlong reply would bury the message)."""
    text = repr(reply)
    if len(text) <= SHOWN_CHARACTERS + 20:
        return text
    unit = "lines" if isinstance(reply, list) else "characters"
    return f"{text[:SHOWN_CHARACTERS]}... ({len(reply)} {unit})"
