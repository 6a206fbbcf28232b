"""Where the simulated rig's noise comes from.

The rig's make-up (its coils' true matrix, its fluxgate's errors) follows `[simulation] seed`
and stays the same from session to session, as a real rig's does. Its noise (the sensor's
through the lock-in, the fluxgate's, the multimeter's) does not: a repeated scan is a real
repeat only if its noise is drawn afresh. So every connection draws fresh entropy, unless the
profile gives `[simulation] noise_seed` (or the environment `SMM_DAQ_SIM_NOISE_SEED`, for a
profile that gives none: the digits 0-9 alone, spaces around them ignored), and at the start
of each measurement the noise generators are drawn again from that base, the measurement's
entry name, its run (0 the start, k the k-th resume) and how many measurements this
connection began before it. With a noise seed, the same
commands in the same order therefore give the same numbers, while two scans of the same area
under different names, in one session or in two, still differ.

Fresh entropy is a whole number a noise seed may be, and each scan records its run's base and
measurement number (`NoiseKey`, in the entry's `runs`): given back as `noise_seed`, the base
reproduces a run that was its connection's first measurement (every `smm-daq scan` and
`resume`); a later one, after the same measurements before it on one connection.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from typing import NamedTuple

import numpy as np

from smm_daq.errors import InputError

ENVIRONMENT = "SMM_DAQ_SIM_NOISE_SEED"
STREAMS = 3  # the world's (sensor, fluxgate), the lock-in's, the multimeter's
_MAX = 2**63 - 1
_DIGITS = re.compile("[0-9]+")


class NoiseKey(NamedTuple):
    """Where a measurement's noise came from: the connection's base (its noise seed, or the
    fresh entropy drawn in its place) and the measurement's number on that connection (1 its
    first)."""

    base: int
    measurement: int


def fresh_entropy() -> int:
    """63 bits from the operating system: a value `[simulation] noise_seed` takes, so that a
    scan's recorded base, given back, draws its noise again."""
    return secrets.randbits(63)


def base_entropy(noise_seed: int | None) -> int:
    """The profile's noise seed, else the environment's, else fresh entropy."""
    if noise_seed is not None:
        return noise_seed
    text = os.environ.get(ENVIRONMENT, "").strip()
    if not text:
        return fresh_entropy()
    # digits 0-9 only, one way to write each seed: int() also takes 1_0, +5 and another
    # script's digits (٣)
    try:
        value = int(text) if _DIGITS.fullmatch(text) else -1
    except ValueError:  # beyond int()'s 4300 digits
        value = -1
    if not 0 <= value <= _MAX:
        raise InputError(f"environment variable {ENVIRONMENT} is {text!r}; expected a whole "
                         f"number in [0, {_MAX}] in the digits 0-9 alone, no sign or '_' (the "
                         "simulator's noise seed), or unset for fresh noise")
    return value


def _name_key(name: str) -> list[int]:
    digest = hashlib.blake2b(name.encode("utf-8"), digest_size=16).digest()
    return [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]


class NoiseSeeds:
    """The noise generators of one connection to the simulated rig."""

    def __init__(self, noise_seed: int | None) -> None:
        self.base = base_entropy(noise_seed)
        self.begun = 0  # measurements begun on this connection

    def connection(self) -> list[np.random.Generator]:
        """The generators of the connection, before any measurement."""
        return self._draw([0])

    def measurement(self, name: str, run: int | None
                    ) -> tuple[NoiseKey, list[np.random.Generator]]:
        """The generators of the next measurement: entry `name`, its run (None: an entry of
        an earlier version, which logs no runs), and the key they came from."""
        self.begun += 1
        return (NoiseKey(self.base, self.begun),
                self._draw([self.begun, 0 if run is None else run + 1, *_name_key(name)]))

    def _draw(self, key: list[int]) -> list[np.random.Generator]:
        seq = np.random.SeedSequence(self.base, spawn_key=tuple(key))
        return [np.random.default_rng(s) for s in seq.spawn(STREAMS)]
