"""`smm-daq gui`: registered from the gui package so the core never imports Qt.

Qt and the window are imported only when the command runs, so `smm-daq --help` stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from smm_daq.shell_words import shell_join

VIEWS = ("instruments", "scan", "session", "recipes", "mmt")
RECORDED_PREFIX = "smm-daq gui: "


def file_word(path: Path) -> str:
    """`path` as a command's word: a name beginning with '-' (a file opened from its own
    folder) read as a path, not as an option."""
    return f"./{path}" if str(path).startswith("-") else str(path)


def recorded_command(arguments: list[str]) -> str:
    """A window's action as the command line would run it (`arguments` after `smm-daq`), for
    the `command` an entry records; the prefix tells it from a command typed. As a file can
    store it (`storable`), a byte that is not UTF-8 in a path written as bash gives it back
    (`shell_join`)."""
    from smm_daq.storage.strings import storable  # h5py: not as the parser is built

    return storable(RECORDED_PREFIX + shell_join(arguments))


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `gui` sub-command."""
    p = sub.add_parser(
        "gui",
        help="the desktop application",
        description="Operate the microscope and look at the results.",
    )
    p.add_argument("file", nargs="?", type=Path, metavar="FILE.h5", help="session file to open")
    p.add_argument("--profile", type=Path, metavar="FILE", help="instrument profile (TOML)")
    p.add_argument(
        "--demo",
        action="store_true",
        help="run the simulator demo in the window (simulated profile only)",
    )
    p.add_argument(
        "--screenshot",
        type=Path,
        metavar="FILE.png",
        help="save a picture of the window and quit (after the demo, with --demo)",
    )
    p.add_argument(
        "--view",
        choices=VIEWS,
        default=None,
        help="the tab to show first (and in the screenshot)",
    )
    p.add_argument(
        "--time-scale",
        type=float,
        default=None,
        metavar="S",
        help="simulated seconds per real second (simulated rig; default 0: as fast as "
             "possible)",
    )
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from gui.app import run

    return run(args)
