"""A registration's shift found and not applied is said, however precisely it is known: one
known to within NEGLIGIBLE_SD_PIXELS (a shift up to ~0.25 pixel not significantly different
from zero) returned no concern at all, so the entry, the Session and a recipe's run said
nothing of the shift left out."""

from __future__ import annotations

from smm_daq.analysis.registration import (
    NEGLIGIBLE_SD_PIXELS,
    Registration,
    registration_concerns,
    shift_is_significant,
)

STEP = (10e-6, 10e-6)  # m


def _precise_insignificant() -> Registration:
    sd = 0.8 * NEGLIGIBLE_SD_PIXELS * STEP[0]
    reg = Registration(shift=(1.5 * sd, -1.5 * sd), shift_sd=(sd, sd), rms_residual=1e-9,
                       noise_shift_sd=(sd, sd), noise_rms=1e-9)
    assert not shift_is_significant(reg)
    return reg


def test_a_precise_shift_not_applied_is_said_not_applied() -> None:
    concerns = registration_concerns(_precise_insignificant(), STEP, insignificant_applied=False)
    assert len(concerns) == 1, concerns
    assert "not significantly different from zero, so it is not applied" in concerns[0]
    assert "--apply-insignificant-shift" in concerns[0]


def test_a_precise_shift_applied_is_applied_without_a_word() -> None:
    assert registration_concerns(_precise_insignificant(), STEP, insignificant_applied=True) == []
