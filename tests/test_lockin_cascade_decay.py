"""The lock-in emulator's output filter, stepped in array operations, gives the very floats
the term-by-term sum gave: readings of a seeded simulated rig do not move in the last bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.lockin_emulator import cascade_decay


def term_by_term(e: np.ndarray, a: float) -> np.ndarray:
    """The cascade's step as the emulator wrote it before: section by section, a generator's
    sum of e_j a^(k−j) / (k−j)!, then the decay."""
    decay = math.exp(-a)
    new = np.empty_like(e)
    for k in range(4):
        new[k] = decay * sum(e[j] * a ** (k - j) / math.factorial(k - j) for j in range(k + 1))
    return new


@pytest.mark.parametrize("a", [0.0, 1e-9, 0.05, 0.1, 1.0 / 3.0, 1.0, 2.5, 20.0, 700.0])
def test_the_array_step_is_the_term_by_term_step_to_the_bit(a):
    rng = np.random.default_rng(5)
    for scale in (1e-9, 1e-3, 1.0, 1e6):
        e = rng.normal(size=(4, 2)) * scale
        e[1, 0] = -0.0  # a signed zero sums as before too
        assert cascade_decay(e, a).tobytes() == term_by_term(e, a).tobytes()
