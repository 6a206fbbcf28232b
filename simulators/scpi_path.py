"""SCPI's current path: how the message units of one line joined by ';' are read.

SCPI (1999, vol. 1, 6.2.4) and the manuals of the instruments emulated here (the 34970A
User's Guide, "Command Separators"; the Kepco BOP manual, "Program message syntax summary")
read a header after a ';' from the path of the unit before it, not from the root: after
`FORM:READ:CHAN OFF` the path is `FORM:READ`, so `;TIME OFF` is `FORM:READ:TIME OFF`, while
`;FORM:READ:TIME OFF` is `FORM:READ:FORM:READ:TIME OFF`, an undefined header (-113). A
leading ':' goes back to the root (`;:FORM:READ:TIME OFF`). Common commands (`*CLS`) neither
use nor change the path; every line starts at the root.
"""

from __future__ import annotations


def message_units(message: str) -> list[str]:
    """The units of `message` (split at ';', empty ones left out), each header made whole
    from the current path: `"FORM:READ:CHAN ON;UNIT ON"` -> `["FORM:READ:CHAN ON",
    "FORM:READ:UNIT ON"]`. Headers keep their spelling and case; a leading ':' is dropped."""
    units: list[str] = []
    path = ""  # the nodes before the last one of the last header, with its ':'
    for text in message.split(";"):
        unit = text.strip()
        if not unit:
            continue
        header, space, rest = unit.partition(" ")
        if header.startswith("*"):
            units.append(unit)
            continue
        whole = header[1:] if header.startswith(":") else path + header
        path = whole[: whole.rfind(":") + 1]
        units.append(whole + space + rest)
    return units
