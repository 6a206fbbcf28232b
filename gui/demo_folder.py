"""The demo's temporary folder: removed when the window closes, unless the user added to it.

`smm-daq gui --demo` writes its recipe, its grain file and (unless a session file was named)
its session file into a fresh temporary folder. The window can go on writing there: more
scans into the demo's session file, an MMT result saved beside the demo's entries, exports
saved where the file dialogs open. What the demo wrote is made again by running it again, so
it goes; what the user added may be wanted, so then the whole folder is kept and named.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from gui.demo import GRAINS_FILE, IN_FIELD, INDUCED, RECIPE_FILE, REMANENT, SESSION_FILE
from smm_daq.errors import SmmError
from smm_daq.storage.nexus import list_entries

DEMO_ENTRIES = (REMANENT, IN_FIELD, INDUCED)


def make_demo_folder() -> Path:
    """A fresh folder for the demo's files, in the system's temporary folder."""
    return Path(tempfile.mkdtemp(prefix="smm-daq-demo-"))


def added_by_user(folder: Path) -> list[str]:
    """What is in the demo's `folder` that the demo did not write: other files, and entries of
    its session file other than the demo's (a session file that cannot be read counts, as
    what it holds is unknown)."""
    added = sorted(p.name for p in folder.iterdir()
                   if p.name not in (SESSION_FILE, RECIPE_FILE, GRAINS_FILE))
    session = folder / SESSION_FILE
    if session.exists():
        try:
            entries = list_entries(session)
        except (SmmError, OSError):
            return [*added, f"{SESSION_FILE} (it could not be read)"]
        added += [f"entry '{e.name}' of {SESSION_FILE}" for e in entries
                  if e.name not in DEMO_ENTRIES]
    return added


def kept_unread(folder: Path) -> str:
    """The demo's `folder` kept without looking into it (the window closed past a scan's
    stalled write, which holds h5py's lock: its session file cannot be read); said in a
    line."""
    return (f"demo folder kept as it is: {folder} (the window closed past a scan's write "
            "that had not returned, and its files cannot be read meanwhile; remove it when "
            "it is not wanted)")


def clean_up(folder: Path) -> str:
    """Remove the demo's `folder` unless the user added to it; what was done, in a line."""
    added = added_by_user(folder)
    if added:
        return (f"demo folder kept, as it holds what you added ({', '.join(added)}): "
                f"{folder}")
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        return f"demo folder {folder} could not be removed ({exc})"
    return f"demo files removed ({folder})"
