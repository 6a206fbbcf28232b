"""The entry points installed packages register (drivers, the simulator, commands), read once
per process: reading them scans every installed distribution's metadata, about 20 ms a call,
and each connect asked once per instrument, each command line once more. A package installed
while a program runs is seen by the next program."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib.metadata import EntryPoint, entry_points
from types import MappingProxyType


@cache
def registered(group: str) -> Mapping[str, EntryPoint]:
    """The entry points of `group`, by name."""
    return MappingProxyType({ep.name: ep for ep in entry_points(group=group)})
