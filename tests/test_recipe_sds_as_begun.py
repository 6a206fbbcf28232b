"""`run --continue` of a recipe begun before the correlation of a shift's x and y errors
counted in its significance (no `registration/shift_correlation`): its subtractions written
then were decided by the shift's SDs alone, so the ones still to run are too, and say why;
they took today's rule, the recipe's subtractions decided two ways without a word."""

from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
from test_recipe_shift_as_begun import _checked_continuing, _continued, _cut_after_first
from test_registration_coverage import scans

from smm_daq.acquisition.recipe_continue import decided_by_sds_alone
from smm_daq.analysis import subtraction
from smm_daq.analysis.induced_entry import write_subtraction
from smm_daq.analysis.registration import (
    Registration,
    RegistrationNote,
    estimate_registration,
)
from smm_daq.analysis.subtraction import registration_fields, subtract_maps


def test_a_continued_recipe_decides_by_the_sds_alone_as_it_was_begun(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _cut_after_first(path, earlier_release=False)
    with h5py.File(path, "r+") as f:  # as the release before the correlation wrote it
        del f["d1/registration/shift_correlation"]
    calls, said = _continued(path)
    assert len(calls) == 1 and calls[0]["by_sds_alone"] is True, calls
    assert calls[0]["apply_insignificant"] is False, calls
    assert ("decides whether its shift is significant by the shift's SDs alone, as this "
            "recipe's 'd1'") in said


def test_a_recipe_continued_under_today_s_rule_counts_the_correlation(tmp_path) -> None:
    path = tmp_path / "s.h5"
    _cut_after_first(path, earlier_release=False)
    calls, said = _continued(path)
    assert len(calls) == 1 and calls[0]["by_sds_alone"] is False, calls
    assert "SDs alone" not in said
    checked = _checked_continuing(path)
    assert checked.sds_as_begun == ()


def test_a_subtraction_by_the_sds_alone_applies_what_they_call_significant(
        monkeypatch, tmp_path):
    """A shift two SDs off along both axes, its errors correlated at 0.9: by its SDs alone
    significant (chi-square 8), within the 95 % region that counts the correlation (4.2);
    today's rule leaves it out, the SDs' applies it. The correlation is recorded as estimated
    (it was recorded as a zero, which nothing estimated), beside a flag saying it was not
    counted, which a recipe continued once more reads as decided by the SDs alone."""
    in_field, remanent, _ = scans(np.random.default_rng(8), 8, (0.0, 0.0, 0.0), 0.0,
                                  shift=(0.0, 0.0))
    found = Registration(shift=(2e-6, 3e-6), shift_sd=(1e-6, 1.5e-6), shift_correlation=0.9)

    def estimated(*args, **kwargs) -> Registration:
        return replace(estimate_registration(*args, **kwargs), shift=found.shift,
                       shift_sd=found.shift_sd, shift_correlation=found.shift_correlation)

    monkeypatch.setattr(subtraction, "estimate_registration", estimated)
    with pytest.warns(RegistrationNote, match="not significantly different from zero"):
        today = subtract_maps(in_field, remanent)
    as_begun = subtract_maps(in_field, remanent, by_sds_alone=True)
    assert today.shift == (0.0, 0.0) and today.notes
    assert as_begun.shift == found.shift and not as_begun.notes
    fields = registration_fields(as_begun)
    assert fields["shift_correlation"].value == 0.9 and fields["by_sds_alone"] == 1
    assert "not counting it" in fields["shift_correlation"].long_name
    fields = registration_fields(today)
    assert fields["shift_correlation"].value == 0.9 and "by_sds_alone" not in fields
    path = tmp_path / "s.h5"
    write_subtraction(path, as_begun)
    assert decided_by_sds_alone(path, (as_begun.map.name,)) == (as_begun.map.name,)


def test_a_step_applying_its_shift_anyway_records_its_correlation(tmp_path) -> None:
    """Begun by the release that applied every shift (no shift_found, no shift_correlation)
    and continued: the step left to run applies its shift whatever its significance, so
    nothing is decided by the SDs alone, and the correlation is not replaced by zero (the
    entry's `shift_correlation` said 0 where the estimate was another), nor said so."""
    path = tmp_path / "s.h5"
    _cut_after_first(path, earlier_release=True)
    with h5py.File(path, "r+") as f:
        del f["d1/registration/shift_correlation"]
    calls, said = _continued(path)
    assert len(calls) == 1 and calls[0]["shift_as_begun"] == ("d1",), calls
    assert calls[0]["by_sds_alone"] is False, calls
    assert "SDs alone" not in said, said
