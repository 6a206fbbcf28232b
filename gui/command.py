"""`smm-daq gui`: registered from the gui package so the core never imports Qt."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `gui` sub-command."""
