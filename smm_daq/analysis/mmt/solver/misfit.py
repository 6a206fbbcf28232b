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
NT = 1e-9


@dataclass(frozen=True)
class Misfit:
    """The scan whose residual is largest against its noise: its name, the residual's σ (T;
    its sum of squares over its share of the degrees of freedom), the noise σ (T) and whether
    that noise was the residual's floor (not given)."""

    scan: str
    residual_sigma: float
    noise_sigma: float
    from_floor: bool

    @property
    def ratio(self) -> float:
        return self.residual_sigma / self.noise_sigma

    @property
    def reduced_chi2(self) -> float:
        """SSR / (N − n) / σ²: 1 where the residual is the noise."""
        return self.ratio ** 2


def residual_misfit(result: object, noise: Sequence[float | None] = ()) -> Misfit | None:
    """The residual of each scan of `result` (fresh or saved) against its noise: `noise[s]`
    (T) where given, else scan s's σ where the result was weighted by a σ given
    (`sigma_from_residual` False), else the white-noise floor of its residual; the scan where
    it is largest, None where no scan has both (a map too small for a floor)."""
    fits = fits_of(result)
    coefficients = getattr(result, "coefficients", None)
    unknowns = (coefficients if coefficients is not None
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
        found = Misfit(fit.name, spread, float(level), floor)
        if worst is None or found.ratio > worst.ratio:
            worst = found
    return worst


def misfit_note(misfit: Misfit | None, remedy: str = "", *, tested: bool) -> str:
    """The summary line's words where the residual's reduced chi-square against the noise
    exceeds MISFIT_CHI2, else "": how many times the noise it is, and that the SDs (and the
    higher-order test, where the result has one: `tested`) assume noise only; then `remedy`
    (what the caller offers, in its own words)."""
    if misfit is None or not misfit.reduced_chi2 > MISFIT_CHI2:
        return ""
    against = "the residual's noise floor" if misfit.from_floor else "the noise given"
    return (f"; the residual is {misfit.ratio:.3g} × the noise (scan '{misfit.scan}': "
            f"{misfit.residual_sigma / NT:.4g} nT against {against}, "
            f"{misfit.noise_sigma / NT:.4g} nT; reduced chi-square {misfit.reduced_chi2:.3g}): "
            "the fit is limited by the model, not the noise; "
            f"{'higher-order tests and SDs' if tested else 'the SDs'} assume noise only{remedy}")
