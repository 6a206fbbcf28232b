"""The registration's SD covers its error on small, coarse maps, over noise draws and sample
realisations (point dipoles, closed form), and the subtraction warns when the shift found may
be an artefact.

The maps are the outside reviewer's: 21 × 11 pixels of 20 × 30 µm, 100 µm above the sample,
0.25 µT of noise in each scan, a few grains, a true sub-pixel shift. Each test pools the x and
y errors of REALISATIONS maps (new grains, shift and noise each time, fixed seeds) and counts
|error| > 3 SD. The false-failure rates are stated with each test.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import replace

import h5py
import numpy as np
import pytest
from test_registration import dipoles_bz

from smm_daq.analysis import registration
from smm_daq.analysis.registration import (
    RegistrationWarning,
    estimate_registration,
    shift_is_significant,
)
from smm_daq.analysis.subtraction import registration_fields, subtract_maps
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

HEIGHT = 100e-6
STEP = (20e-6, 30e-6)
SHAPE = (11, 21)  # (ny, nx)
NOISE = 0.25e-6


def scans(rng, grains, induced_along, induced_ratio, shift=None):
    """In-field and zero-field maps of `grains` random dipoles (random remanence, log-normal
    strength) and the true shift: each grain's induced moment lies along `induced_along`, of
    `induced_ratio` times the typical remanent one; the in-field scan sees the sample moved by
    the shift and the applied field's own Bz (3 µT)."""
    ny, nx = SHAPE
    x, y = np.arange(nx) * STEP[0], np.arange(ny) * STEP[1]
    px, py = np.meshgrid(x, y)
    if shift is None:
        shift = rng.uniform(-0.5, 0.5, 2) * np.array(STEP)
    rem, inf = [], []
    for _ in range(grains):
        gx, gy = rng.uniform(-0.2, 1.2, 2) * np.array([x[-1], y[-1]])
        z = -rng.uniform(5e-6, 40e-6)
        direction = rng.normal(size=3)
        m = direction / np.linalg.norm(direction) * 2e-11 * 10 ** rng.normal(0, 0.5)
        m_induced = induced_ratio * 2e-11 * rng.lognormal(0, 0.5) * np.asarray(induced_along)
        rem.append((gx, gy, z, *m))
        inf.append((gx + shift[0], gy + shift[1], z, *(m + m_induced)))
    in_field = dipoles_bz(px, py, inf, HEIGHT) + 3e-6 + rng.normal(size=px.shape) * NOISE
    remanent = dipoles_bz(px, py, rem, HEIGHT) + rng.normal(size=px.shape) * NOISE
    kw = dict(height=HEIGHT, sensor_size=(0.0, 0.0))
    return (MapData(in_field, x, y, name="in_field", applied_field=np.array([40e-6, 0, 0]), **kw),
            MapData(remanent, x, y, name="remanent", applied_field=np.zeros(3), **kw),
            np.asarray(shift))


@functools.cache
def _registrations(seed: int, realisations: int, grains: int,
                   induced_along: tuple[float, float, float], induced_ratio: float
                   ) -> tuple[tuple[registration.Registration, np.ndarray], ...]:
    """The registration of each of `realisations` maps and its true shift. Made once per
    case: the tests of the two SDs of one case read the same fits (nothing changes them)."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(realisations):
        in_field, remanent, shift = scans(rng, grains, induced_along, induced_ratio)
        found.append((estimate_registration(in_field, remanent), shift))
    return tuple(found)


def outliers(seed, realisations, grains, induced_along, induced_ratio, sd="shift_sd"):
    """How many of the 2 × `realisations` shift errors exceed 3 SD (the Registration's field
    `sd`)."""
    z = []
    for reg, shift in _registrations(seed, realisations, grains, induced_along, induced_ratio):
        z.extend((np.array(reg.shift) - shift) / np.array(getattr(reg, sd)))
    return int(np.sum(np.abs(z) > 3))


@pytest.mark.parametrize("sd", ["noise_shift_sd", "shift_sd"])
def test_shift_sd_covers_the_noise_on_a_small_coarse_grid(sd):
    """No induced field: the error is the noise's, which the residual-based SD alone
    (`noise_shift_sd`) must cover. The Gauss-Newton J^T J counted the moving map's noise
    gradients as curvature: 2.6 times too small an SD, 19 of 60 errors beyond 3 SD (32 %).
    A right SD puts 0.3 % beyond 3 SD (about 2 % measured). Here 15 maps, 30 errors: failing
    at 4 or more has a false-failure rate of 0.3 % at 2 % (6 or more of 60 had 0.13 %), and
    passes an SD 2.6 times too small with a chance of 0.6 % at 32 %."""
    assert outliers(11, 15, 5, (0.0, 0.0, 0.0), 0.0, sd) < 4


def test_shift_sd_covers_a_horizontal_fields_induced_misfit():
    """Induced moments along +x (a horizontal field), 30 % of the remanent ones, ten grains: a
    horizontal dipole below the sensor looks like a shifted vertical one, so the shift absorbs
    part of the induced field, which the residual then no longer shows. Residual-based SDs let
    11 % of the errors beyond 3 SD (13 of 120 at seeds 1, 2 and 3); with the block jackknife
    about 5 % (4, 7, 10 and 3 of 120 at seeds 1, 2, 3 and 5: its SD comes from few blocks, so
    the tail is heavier than a Gaussian's). Here 30 maps, 60 errors: failing at 7 or more has
    a false-failure rate of 3.0 % at 5 % (11 or more of 120 had 3.8 %); without the jackknife
    it would pass one seed in two (one in four at 120)."""
    assert outliers(1, 30, 10, (1.0, 0.0, 0.0), 0.3) < 7


def test_a_shift_at_zero_is_seldom_significant_where_the_maps_differ_by_an_induced_field():
    """Eight grains in a horizontal field, induced moments of half the remanent ones, 20
    maps: the error of each shift found (the true shift taken off) judged as a shift at zero
    would be. The residual left by the shift is smooth (the induced field, as wide as a
    grain's field seen from 100 µm) and the shift absorbed the part of it shaped like one:
    the larger of the sandwich's SD (its autocovariance cut at a quarter of the map) and the
    jackknife's, unscaled by the misfit, called 5 of these significant (5, 7 and 6 at seeds
    1, 2 and 3; 27 % of 600 maps in benchmarks/registration_significance.py); their sum,
    scaled, 1 (1, 3 and 1)."""
    errors = [replace(reg, shift=tuple(np.array(reg.shift) - shift))
              for reg, shift in _registrations(1, 20, 8, (1.0, 0.0, 0.0), 0.5)]
    assert sum(shift_is_significant(reg) for reg in errors) <= 2


def test_a_shift_that_may_be_an_artefact_is_said_as_what_it_is_where_left_out():
    """Four grains in a horizontal field, no shift: (-1.6 ± 5.3, 0.9 ± 2.8) µm found, 0.27
    pixel SD, and the block jackknife's SD 2.1 times the residual's (which the misfit scales
    by 1.2). Not significant, the shift is left out, and the misfit is said in the same
    warning (the SD above a quarter pixel, a shift of a pixel or more may be left out), as a
    reason not to force it, not advising to compare with the maps subtracted as they lie,
    which they were. Forced, each is a warning, with that advice."""
    rng = np.random.default_rng(1)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    with pytest.warns(RegistrationWarning) as caught:
        res = subtract_maps(in_field, remanent)
    assert [str(w.message) for w in caught] == [f"'in_field − remanent': {c}"
                                                for c in res.notes + res.concerns]
    assert [w.category for w in caught] == [RegistrationWarning]
    assert res.notes == () and len(res.concerns) == 1
    said = res.concerns[0]
    assert "not significantly different from zero, so it is not applied" in said
    assert "so poorly determined that a real shift of a pixel or more" in said
    assert "differ by more than a shift" in said
    assert "leaving out parts of the map moves the shift by 2.1 times" in said
    assert "may have absorbed part of the induced field" in said
    assert "compare with the maps subtracted as they lie" not in said
    with pytest.warns(RegistrationWarning) as caught:
        forced = subtract_maps(in_field, remanent, apply_insignificant=True)
    assert [w.category for w in caught] == [RegistrationWarning] * 3
    assert forced.notes == ()
    assert "differ by more than a shift" in forced.concerns[1]
    assert "compare with the maps subtracted as they lie" in forced.concerns[1]


def test_a_poorly_determined_shift_is_warned_of_even_when_significant():
    """Four grains in a horizontal field, no shift: (-33.6 ± 13.4, 7.5 ± 17.0) µm found, 2.5 SD
    off and nothing in the residual to show it; an SD of two thirds of a pixel is warned of."""
    rng = np.random.default_rng(7)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    with pytest.warns(RegistrationWarning, match="poorly determined"):
        res = subtract_maps(in_field, remanent)
    assert len(res.concerns) == 1


def test_a_well_determined_shift_is_applied_without_a_word():
    """No induced field, a shift of a third of a pixel: significant and the maps alike."""
    rng = np.random.default_rng(8)
    in_field, remanent, shift = scans(rng, 8, (0.0, 0.0, 0.0), 0.0, shift=(7e-6, -10e-6))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RegistrationWarning)
        res = subtract_maps(in_field, remanent)
    assert res.concerns == ()
    assert np.all(np.abs(np.array(res.shift) - shift) < 3 * np.array(res.shift_sd))


def test_the_subtract_command_says_the_shift_left_out_once_and_records_it(tmp_path, capsys):
    rng = np.random.default_rng(1)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    path = tmp_path / "s.h5"
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")
    assert main(["subtract", str(path), "--in-field", "in_field", "--remanent", "remanent",
                 "--name", "induced"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("smm-daq: warning: '"), err
    assert "not significantly different from zero, so it is not applied" in err[0]
    assert "differ by more than a shift" in err[0]
    assert "compare with the maps subtracted as they lie" not in err[0]
    with h5py.File(path) as f:
        reg = f["induced/registration"]
        assert reg["warnings"][()].decode() == err[0].split("': ", 1)[1]
        assert "notes" not in reg
        assert np.all(reg["noise_shift_errors"][()] <= reg["shift_errors"][()])
        assert reg["noise_shift_errors"].attrs["units"] == "m"


def test_the_jackknife_from_newton_starts_agrees_with_refits_from_the_full_solution(
        monkeypatch):
    """Each jackknife refit starts from a Newton step off the full solution, so it resamples
    the moving map fewer times than one started at the full solution; both converge, so their
    SDs agree: within 3 % for 93 of 94 SDs over this file's cases, 9 % for the last (each
    refit's overlap follows its shift, so where it stops depends a little on the start).
    Here, five maps of the horizontal-field case."""
    rng = np.random.default_rng(1)
    cases = [scans(rng, 10, (1.0, 0.0, 0.0), 0.3)[:2] for _ in range(5)]
    samples = {"newton": 0, "full": 0}
    sample = registration._Resampler.sample

    def run(way: str) -> np.ndarray:
        def counted(self, *args):
            samples[way] += 1
            return sample(self, *args)

        monkeypatch.setattr(registration._Resampler, "sample", counted)
        return np.array([estimate_registration(*maps).shift_sd for maps in cases])

    newton = run("newton")
    monkeypatch.setattr(registration, "_newton_step", lambda h, g: None)
    full = run("full")
    ratio = newton / full
    assert np.all(np.abs(ratio - 1) < 0.03), ratio
    assert samples["newton"] < 0.7 * samples["full"], samples


def _the_99th_map_of_seed_2():
    """Eight grains in a horizontal field, induced moments of half the remanent ones: the
    in-field and zero-field maps and the true shift, (4.8, 13.3) µm."""
    rng = np.random.default_rng(2)
    for _ in range(99):
        in_field, remanent, shift = scans(rng, 8, (1.0, 0.0, 0.0), 0.5)
    return in_field, remanent, shift


def test_the_whole_pixel_search_stops_at_a_quarter_of_the_map():
    """The search for the whole-pixel start reached half the map (10 pixels along x), and on
    these maps the windowed cross-correlation of a few grains' fields peaked at the far lag:
    the fit locked on (185, 0) µm, 9 pixels off the true (4.8, 13.3) µm, half the map lost,
    and called that shift significant. Searched to a quarter of the map, as documented, the
    shift found lies within a pixel and a half of the truth."""
    in_field, remanent, shift = _the_99th_map_of_seed_2()
    reg = estimate_registration(in_field, remanent)
    error_pixels = np.abs(np.array(reg.shift) - shift) / np.array(STEP)
    assert np.max(error_pixels) < 1.5


def test_a_jackknife_refit_that_runs_off_the_overlap_does_not_fail_the_registration(
        monkeypatch):
    """The 99th map of seed 2, 3 × 3 blocks, the search reaching 10 pixels along x: the full
    fit lands 9 pixels off, on an overlap of 110 pixels, and leaving out one block its refit
    ran off it (59 pixels after (203, 48) µm): the InputError failed the whole registration.
    Now the refit stops there and counts as far as it went: the shift is said poorly
    determined, not the maps unregistrable."""
    monkeypatch.setattr(registration, "JACKKNIFE_BLOCKS", (3, 3))
    in_field, remanent, _ = _the_99th_map_of_seed_2()
    reg = estimate_registration(in_field, remanent, max_shift=190e-6)
    sd_pixels = np.array(reg.shift_sd) / np.array(STEP)
    assert np.all(np.isfinite(sd_pixels)) and np.max(sd_pixels) > registration.POOR_SD_PIXELS
    assert np.max(np.array(reg.shift_sd) / np.array(reg.noise_shift_sd)) > 2.0


def test_a_shift_not_significantly_different_from_zero_is_not_applied_unless_forced():
    """The same four grains, no shift: (-1.6 ± 5.3, 0.9 ± 2.8) µm found, within its 95 %
    region about zero. It was warned of as a possible artefact, then applied all the same;
    now the maps are subtracted as they lie (a zero shift, said), the shift found kept beside
    it, and applied only when asked."""
    rng = np.random.default_rng(1)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    with pytest.warns(RegistrationWarning) as caught:
        res = subtract_maps(in_field, remanent)
    assert res.registration is not None and res.registration.shift != (0.0, 0.0)
    assert res.shift == (0.0, 0.0)
    np.testing.assert_array_equal(res.map.bz, in_field.bz - remanent.bz)
    said = str(caught[0].message)
    assert "not significantly different from zero, so it is not applied" in said
    assert "--apply-insignificant-shift" in said
    fields = registration_fields(res)
    np.testing.assert_array_equal(fields["shift"].value, [0.0, 0.0])
    np.testing.assert_array_equal(fields["shift_found"].value, res.registration.shift)
    with pytest.warns(RegistrationWarning) as caught:
        forced = subtract_maps(in_field, remanent, apply_insignificant=True)
    assert "applying it may add an artefact" in str(caught[0].message)
    assert forced.shift == res.registration.shift
    assert not np.array_equal(forced.map.bz, res.map.bz, equal_nan=True)


def test_a_recipe_s_subtraction_forces_an_insignificant_shift_only_when_asked():
    from smm_daq.acquisition.recipe import parse_recipe
    from smm_daq.errors import InputError

    step = ('[[step]]\nkind = "subtract"\nin_field = "a"\nremanent = "b"\nname = "c"\n')
    assert not parse_recipe(step).steps[0].apply_insignificant_shift
    forced = parse_recipe(step + "apply_insignificant_shift = true\n").steps[0]
    assert forced.apply_insignificant_shift and forced.register
    with pytest.raises(InputError, match="apply_insignificant_shift"):
        parse_recipe(step + 'apply_insignificant_shift = "yes"\n')


def _the_13th_map_of_seed_1_at_1_5():
    """Eight grains in a horizontal field, induced moments 1.5 times the remanent ones: the
    in-field and zero-field maps, true shift (2.8, -8.6) µm."""
    rng = np.random.default_rng(1)
    for _ in range(13):
        in_field, remanent, _ = scans(rng, 8, (1.0, 0.0, 0.0), 1.5)
    return in_field, remanent


def test_a_fit_that_wanders_off_is_a_shift_left_out_not_a_failed_subtraction():
    """The whole-pixel start lies at (-7.6, -8.8) µm, but the Gauss-Newton fit walked on to
    (58, -213) µm, far beyond the search's ±(100, 60) µm, where the maps overlap in 54 pixels:
    the InputError failed the subtraction. Now the fit is held within the search's bound plus
    a pixel, reaches it, and the shift is said not determined and left out."""
    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    with pytest.warns(RegistrationWarning) as caught:
        res = subtract_maps(in_field, remanent)
    assert len(caught) == 1 and res.concerns and res.notes == ()
    said = str(caught[0].message)
    assert "determined no shift: the fit reached the bound of ±(120, 90) µm" in said
    assert "no shift is applied (the maps subtracted as they lie)" in said
    assert res.shift == (0.0, 0.0) and res.registration.undetermined
    assert abs(res.registration.shift[1]) == pytest.approx(90e-6)
    np.testing.assert_array_equal(res.map.bz, in_field.bz - remanent.bz)
    assert np.all(np.isnan(registration_fields(res)["shift_errors"].value))


def test_an_induced_map_is_titled_registered_only_where_a_shift_was_determined():
    """Titled "(registered)" whatever the registration found, a difference of the maps as
    they lie (no shift determined) was shown so by `smm-daq info`, the window and exports."""
    rng = np.random.default_rng(1)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    with pytest.warns(RegistrationWarning):  # a shift found, not significant: left out
        assert subtract_maps(in_field, remanent).map.title == (
            "in_field − remanent (registered: no shift applied)")
    with pytest.warns(RegistrationWarning):  # ... and forced: the map moved
        assert subtract_maps(in_field, remanent, apply_insignificant=True).map.title == (
            "in_field − remanent (registered)")
    assert subtract_maps(in_field, remanent, register=False).map.title == "in_field − remanent"
    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    with pytest.warns(RegistrationWarning, match="determined no shift"):
        res = subtract_maps(in_field, remanent)
    assert res.map.title == "in_field − remanent (not registered: no shift determined)"


def test_a_shift_applied_as_a_recipe_s_earlier_subtractions_were_is_not_forced():
    """`shift_as_begun` (a continued recipe whose subtractions written by an earlier release
    applied every shift found) applies a shift not significantly different from zero, as
    forcing it does; where none was determined it applies none, as by default, saying that
    those subtractions applied theirs. Refused there, the recipe could never be finished.
    The user's own force is refused still."""
    rng = np.random.default_rng(1)
    in_field, remanent, _ = scans(rng, 4, (1.0, 0.0, 0.0), 0.5, shift=(0.0, 0.0))
    with pytest.warns(RegistrationWarning):
        res = subtract_maps(in_field, remanent, shift_as_begun=("d1",))
    assert not shift_is_significant(res.registration)
    assert res.shift == res.registration.shift != (0.0, 0.0)

    in_field, remanent = _the_13th_map_of_seed_1_at_1_5()
    with pytest.warns(RegistrationWarning) as caught:
        res = subtract_maps(in_field, remanent, shift_as_begun=("d1", "d2"))
    assert len(caught) == 1 and res.registration.undetermined and res.shift == (0.0, 0.0)
    said = str(caught[0].message)
    assert ("no shift is applied (the maps subtracted as they lie); this recipe's earlier "
            "subtractions ('d1', 'd2') applied their shifts") in said, said
    assert res.concerns == (said.removeprefix("'in_field − remanent': "),)
    np.testing.assert_array_equal(res.map.bz, in_field.bz - remanent.bz)
    with pytest.raises(InputError, match="there is no shift to apply as"):
        subtract_maps(in_field, remanent, apply_insignificant=True, shift_as_begun=("d1",))


def test_the_subtract_command_leaves_out_a_shift_not_determined_and_refuses_to_force_it(
        tmp_path, capsys):
    """The same maps: subtracted as they lie, said on stderr and stdout, recorded; forcing
    the shift asks for one there is none of: refused, exit 2, nothing more written."""
    path = tmp_path / "s.h5"
    for m in reversed(_the_13th_map_of_seed_1_at_1_5()):
        write_map_entry(path, m, kind="scan")
    command = ["subtract", str(path), "--in-field", "in_field", "--remanent", "remanent"]
    assert main([*command, "--name", "induced"]) == 0
    out, err = capsys.readouterr()
    assert "registered: no shift determined: not applied (see the warning)" in out
    assert "determined no shift: the fit reached the bound" in err
    assert main(["info", str(path)]) == 0  # titled as it was subtracted, not "(registered)"
    assert "'in_field − remanent (not registered: no shift determined)'" in capsys.readouterr().out
    assert main([*command, "--name", "forced", "--apply-insignificant-shift"]) == 2
    err = capsys.readouterr().err
    assert "determined no shift: the fit reached the bound" in err
    assert "there is no shift to apply as --apply-insignificant-shift" in err
    with h5py.File(path) as f:
        assert "forced" not in f
        reg = f["induced/registration"]
        np.testing.assert_array_equal(reg["shift"][()], [0.0, 0.0])
        assert np.all(np.isnan(reg["shift_errors"][()]))
        assert "determined no shift" in reg["warnings"][()].decode()
