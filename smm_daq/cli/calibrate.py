"""`smm-daq calibrate-coils`: fit the coil matrix and ambient field with the fluxgate."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    """Add the `calibrate-coils` sub-command."""
