"""Is an inversion limited by its noise or by its model? The residual against the noise.

The SDs, uncertainty ratios and the higher-order test take the residual for white noise of SD
σ. Where the residual is far larger than the noise the instrument measured (grains the micro-CT
missed, wrong shapes, a misregistration), the fit is limited by the model: with σ the noise the
SDs are too small and nearly every grain's higher orders come out "resolved"; with σ from the
residual (the reduced chi-square folded into the covariance, as least squares by default does)
the SDs are as large as the misfit, but the misfit is still no white noise (its field is
smooth, as the grains' are) and a grain's higher orders still fit it: on a synthetic sample of
dipoles with one grain left out of the grain file, both tests flag nearly every grain
(docs/mmt-models.md). Neither covariance mends that; the summary says so where it happens.

The noise each scan's residual is set against is the σ the user gave, where given, else the
white-noise floor of the residual (`noise.white_noise_floor`, from its pixel-scale
differences), not of the measured map: over dense grains the measured field bends at the
pixel scale and its floor reads 10 to 1,600 times the noise, which silenced a grain left out of
the file whose residual was 85 times the noise (read 0.84 times); the fitted field taken out,
the residual's floor is the noise, or the misfit where that bends at the pixel scale too (the
ratio is then a lower bound). The fit takes a share of the noise away with it (the residual's
pixel-scale differences hold at least 1 − n/N of its variance): the floor is scaled up by
√(N/(N − n)), so that noise alone never reads as misfit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from smm_daq.analysis.mmt.scan_fits import fits_of
from smm_daq.analysis.noise import white_noise_floor

# The reduced chi-square of the residual against the noise above which the summary says the fit
# is limited by the model: twice the noise's variance (σ 1.41 times the noise). White noise
# fitted by the right model gives 1 within √(2/ν) (under 2 % for a thousand pixels) and the
# residual's floor is right within a few per cent.
MISFIT_CHI2 = 2.0
# Below the noise given, a residual says the fit took up part of that noise (or the σ given is
# too large): a reduced chi-square under UNDER_CHI2 and more than UNDER_SDS of its sampling SD
# √(2/ν) under 1, which white noise of the σ given reaches about once in 30,000 fits. Noise
# correlated over the grains' scale (a smooth background, drift) is taken up so, into the
# grains' higher orders above all: a background of 20 nT smooth over 10 µm beside 20 nT of
# white noise, the σ given their 28 nT (4 point dipoles on 21 × 21 pixels, fitted as
# quadrupoles): reduced chi-square 0.58 (median of 100 draws), 65 to 69 % of the dipoles
# flagged at 5 %, and nothing said before (the residual's own floor sees next to none of
# it, 1.01: the fit took it up); this note then shows in 91 of the 100 draws.
UNDER_CHI2 = 0.8
UNDER_SDS = 4.0
NT = 1e-9


@dataclass(frozen=True)
class Misfit:
    """The scan whose residual is largest against its noise: its name, the residual's σ (T;
    its sum of squares over its share of the degrees of freedom), the noise σ (T) and whether
    that noise was the residual's floor (not given), and the degrees of freedom of its
    residual."""

    scan: str
    residual_sigma: float
    noise_sigma: float
    from_floor: bool
    dof: float = math.inf

    @property
    def under_noise(self) -> bool:
        """Whether the residual is below the noise given by more than white noise of it
        reaches (`UNDER_CHI2`, `UNDER_SDS`): never against the residual's own floor."""
        spread = UNDER_SDS * math.sqrt(2.0 / self.dof) if self.dof > 0 else math.inf
        return (not self.from_floor and self.reduced_chi2 < UNDER_CHI2
                and self.reduced_chi2 < 1.0 - spread)

    @property
    def ratio(self) -> float:
        return self.residual_sigma / self.noise_sigma

    @property
    def reduced_chi2(self) -> float:
        """SSR / (N − rank) / σ²: 1 where the residual is the noise."""
        return self.ratio ** 2


def residual_misfit(result: object, noise: Sequence[float | None] = ()) -> Misfit | None:
    """The residual of each scan of `result` (fresh or saved) against its noise: `noise[s]`
    (T) where given, else scan s's σ where the result was weighted by a σ given
    (`sigma_from_residual` False), else the white-noise floor of its residual; the scan where
    it is largest, None where no scan has both (a map too small for a floor). The degrees of
    freedom are counted with the fit's rank where the result knows it (a fresh one), as the
    solver's σ from the residual are: grains given twice, or collinear, fit fewer directions
    than their columns, and N − n counted a noise-only residual as misfit (an octupole fit
    of 4 grains and 2 given twice on 121 pixels: reduced chi-square 2.0, not 1); else with
    the unknowns."""
    fits = fits_of(result)
    coefficients = getattr(result, "coefficients", None)
    rank = getattr(result, "rank", None)
    unknowns = rank if rank is not None else (
        coefficients if coefficients is not None
        else result.magnetization).size  # type: ignore[attr-defined]
    residuals = [np.asarray(f.residual.bz, dtype=float) for f in fits]
    total = sum(int(np.isfinite(r).sum()) for r in residuals)
    sigmas = getattr(result, "sigmas", ()) or (result.sigma,)  # type: ignore[attr-defined]
    worst: Misfit | None = None
    for s, (fit, resid) in enumerate(zip(fits, residuals, strict=True)):
        used = resid[np.isfinite(resid)]
        dof = used.size * (1.0 - unknowns / total) if total > unknowns else 0.0
        if dof <= 0:
            continue
        spread = math.sqrt(float(used @ used) / dof)
        given = noise[s] if s < len(noise) else None
        if given is None and not result.sigma_from_residual:  # type: ignore[attr-defined]
            given = sigmas[s] if s < len(sigmas) else None
        floor = given is None
        level = (white_noise_floor(resid) * math.sqrt(used.size / dof) if floor else given)
        if not (level is not None and level > 0 and math.isfinite(level)):
            continue
        found = Misfit(fit.name, spread, float(level), floor, dof)
        if worst is None or found.ratio > worst.ratio:
            worst = found
    return worst


def misfit_note(misfit: Misfit | None, remedy: str = "", *, tested: bool) -> str:
    """The summary line's words where the residual's reduced chi-square against the noise
    exceeds MISFIT_CHI2, else "": how many times the noise it is, and that the SDs (and the
    higher-order test, where the result has one: `tested`) assume noise only; then `remedy`
    (what the caller offers, in its own words). Where instead the residual is below the
    noise given by more than white noise reaches (`Misfit.under_noise`), that: the fit took
    up part of the noise, or the σ given is too large (`remedy` does not apply)."""
    if misfit is not None and misfit.under_noise:
        return (f"; the residual is {misfit.ratio:.3g} × the noise given (scan "
                f"'{misfit.scan}': {misfit.residual_sigma / NT:.4g} nT against "
                f"{misfit.noise_sigma / NT:.4g} nT; reduced chi-square "
                f"{misfit.reduced_chi2:.3g}): the fit took up part of that noise, or the noise "
                "given is too large; noise correlated over the grains' scale (a smooth "
                "background, drift) is taken up so"
                f"{', into the higher orders, which then flag dipoles' if tested else ''}, "
                f"and {'higher-order tests and SDs assume' if tested else 'the SDs assume'} "
                "white noise of the σ given")
    if misfit is None or not misfit.reduced_chi2 > MISFIT_CHI2:
        return ""
    against = "the residual's noise floor" if misfit.from_floor else "the noise given"
    return (f"; the residual is {misfit.ratio:.3g} × the noise (scan '{misfit.scan}': "
            f"{misfit.residual_sigma / NT:.4g} nT against {against}, "
            f"{misfit.noise_sigma / NT:.4g} nT; reduced chi-square {misfit.reduced_chi2:.3g}): "
            "the fit is limited by the model, not the noise; "
            f"{'higher-order tests and SDs' if tested else 'the SDs'} assume noise only{remedy}")
