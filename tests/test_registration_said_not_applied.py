"""A registration's shift found and not applied is said, however precisely it is known: one
known to within NEGLIGIBLE_SD_PIXELS (a shift up to ~0.25 pixel not significantly different
from zero) returned no concern at all, so the entry, the Session and a recipe's run said
nothing of the shift left out. Left out as by default and known to POOR_SD_PIXELS, it is said
as a note (the expected outcome, not a fault: the demo printed it as a warning); known worse,
the shift left out may be a pixel or more, and it is a warning."""

from __future__ import annotations

from dataclasses import replace

from smm_daq.analysis.registration import (
    NEGLIGIBLE_SD_PIXELS,
    POOR_SD_PIXELS,
    Registration,
    registration_concerns,
    registration_notes,
    shift_is_significant,
)

STEP = (10e-6, 10e-6)  # m


def _precise_insignificant(sd_pixels: float = 0.8 * NEGLIGIBLE_SD_PIXELS) -> Registration:
    sd = sd_pixels * STEP[0]
    reg = Registration(shift=(1.5 * sd, -1.5 * sd), shift_sd=(sd, sd), rms_residual=1e-9,
                       noise_shift_sd=(sd, sd), noise_rms=1e-9)
    assert not shift_is_significant(reg)
    return reg


def test_a_precise_shift_not_applied_is_said_not_applied_as_a_note() -> None:
    reg = _precise_insignificant()
    notes = registration_notes(reg, STEP, insignificant_applied=False)
    assert len(notes) == 1, notes
    assert "not significantly different from zero, so it is not applied" in notes[0]
    assert "--apply-insignificant-shift" in notes[0]
    assert registration_concerns(reg, STEP, insignificant_applied=False) == []


def test_a_shift_known_to_a_quarter_pixel_not_applied_is_a_note() -> None:
    reg = _precise_insignificant(POOR_SD_PIXELS)
    assert len(registration_notes(reg, STEP, insignificant_applied=False)) == 1
    assert registration_concerns(reg, STEP, insignificant_applied=False) == []


def test_a_poorly_known_shift_not_applied_is_warned_of() -> None:
    """An SD over POOR_SD_PIXELS: the shift left out may be a pixel or more."""
    reg = _precise_insignificant(1.5 * POOR_SD_PIXELS)
    assert registration_notes(reg, STEP, insignificant_applied=False) == []
    concerns = registration_concerns(reg, STEP, insignificant_applied=False)
    assert len(concerns) == 1, concerns
    assert "not significantly different from zero, so it is not applied" in concerns[0]
    assert "poorly determined" in concerns[0]


def test_a_misfit_with_the_shift_left_out_is_said_without_advice_to_do_what_was_done() -> None:
    """Left out, the shift changed nothing: the maps' misfit and the shift's poor determination
    were each warned of besides, advising to compare with the maps subtracted as they lie,
    which they were. Said now in the one message on the shift left out, as a reason not to
    force it; applied, the advice stands."""
    sd = 1.5 * POOR_SD_PIXELS * STEP[0]
    reg = Registration(shift=(1.5 * sd, -1.5 * sd), shift_sd=(sd, sd), rms_residual=5e-9,
                       noise_shift_sd=(sd / 3, sd / 3), noise_rms=1e-9)
    concerns = registration_concerns(reg, STEP, insignificant_applied=False)
    assert len(concerns) == 1, concerns
    assert "so it is not applied (the maps subtracted as they lie" in concerns[0]
    assert "the maps differ by more than a shift (residual 0.005 µT RMS" in concerns[0]
    assert "may have absorbed part of the induced field" in concerns[0]
    assert "compare with the maps subtracted as they lie" not in concerns[0]
    forced = registration_concerns(reg, STEP, insignificant_applied=True)
    assert len(forced) == 3
    assert all("compare with the maps subtracted as they lie" in c for c in forced)
    well_known = replace(reg, shift=(0.75 * sd, -0.75 * sd), shift_sd=(sd / 2, sd / 2))
    assert registration_concerns(well_known, STEP, insignificant_applied=False) == []
    notes = registration_notes(well_known, STEP, insignificant_applied=False)
    assert len(notes) == 1 and "the maps differ by more than a shift" in notes[0]
    assert "compare with the maps subtracted as they lie" not in notes[0]


def test_a_precise_shift_applied_is_applied_without_a_word() -> None:
    reg = _precise_insignificant()
    assert registration_concerns(reg, STEP, insignificant_applied=True) == []
    assert registration_notes(reg, STEP, insignificant_applied=True) == []


def test_a_misfit_with_a_rotation_applied_and_the_shift_left_out_is_warned_of() -> None:
    """A rotation fitted is applied even where the shift is left out: the maps were not
    subtracted as they lie, which the note said, and the maps' misfit, which the rotation may
    have absorbed too, was said only in that note, without the advice to compare with them
    subtracted as they lie."""
    sd = 0.5 * (NEGLIGIBLE_SD_PIXELS + POOR_SD_PIXELS) * STEP[0]
    reg = Registration(shift=(1.5 * sd, -1.5 * sd), shift_sd=(sd, sd), rms_residual=5e-9,
                       noise_shift_sd=(sd / 3, sd / 3), noise_rms=1e-9, rotation=0.01)
    assert not shift_is_significant(reg)
    notes = registration_notes(reg, STEP, insignificant_applied=False)
    assert len(notes) == 1, notes
    assert "so it is not applied (a zero shift, the rotation found applied)" in notes[0]
    assert "as they lie" not in notes[0] and "differ by more than a shift" not in notes[0]
    concerns = registration_concerns(reg, STEP, insignificant_applied=False)
    assert len(concerns) == 1, concerns
    assert "the maps differ by more than a shift" in concerns[0]
    assert "compare with the maps subtracted as they lie" in concerns[0]
    assert "not significantly different from zero" not in concerns[0]
