"""Registration of two scans of one sample: the sub-pixel shift (and, if asked, a small rotation)
that carries one map onto the other, estimated from the maps themselves, with its uncertainty.

Convention: `moved(p) = moving(R(-θ) (p - c - s) + c)`, p a position (x, y) in m, c the centre
of the grid, s = `shift` and θ = `rotation` (counter-clockwise, rad). A sample that sat further
along +x in the reference scan than in the moving scan gives a positive shift x.

Method: a windowed cross-correlation gives the whole-pixel start; Gauss-Newton least squares
on the overlap (Fourier-shift resampling of the moving map, see `_Resampler`; a free constant
offset between the maps, which absorbs the applied field's leakage into Bz) refines it.
The covariance is the sum of two estimates (`_covariance`; its x-y correlation is
`shift_correlation`, on which the shift's significance does not rest alone,
`shift_is_significant`):
- the sandwich covariance H^-1 J^T C J H^-1, C the residual's own autocovariance
  (Bartlett-weighted over the whole map; the residual of an in-field against a zero-field
  scan holds the induced field, which is smooth, so treating it as white noise would
  understate the uncertainty) and H the Hessian of the sum of squares (see
  `_Fit.pixel_hessians`: not J^T J, which counts the moving map's noise gradients as
  curvature);
- a delete-one-block jackknife over a 4 × 4 grid of blocks (refits from Newton starts, see
  `_Fit.jackknife`): the shift absorbs whatever part of the induced field looks like a shift
  of the remanent map (a horizontal field's induced dipoles do, below a vertically magnetized
  grain), which the residual no longer shows, so on maps of a few grains the residual alone
  understated it five-fold;
each scaled by the squared ratio of the residual's RMS to the noise's where above 1
(`_misfit_factor`): what the shift absorbed grows with what it left. On maps that differ by
an induced field, a shift at zero was called significant 17 to 27 % of the time with the
larger of the two, unscaled, the sandwich's window cut at a quarter of the map
(benchmarks/registration_significance.py).
`registration_concerns` says when the shift found should not be trusted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from smm_daq.analysis.fill import fill_nan
from smm_daq.analysis.fourier import periodic_smooth, wavenumbers
from smm_daq.analysis.grids import (
    MIN_PIXELS_PER_PARAMETER,
    SHIFT_PARAMETERS,
    require_regular,
    require_same_grid,
)
from smm_daq.errors import InputError, Note
from smm_daq.storage.mapdata import MapData

_FD_STEP = 0.05  # pixels, for the spline gradient
JACKKNIFE_BLOCKS = (4, 4)  # (rows, columns) of blocks left out one at a time
NEWTON_START_PIXELS = 0.25  # a jackknife refit starts from a Newton step no longer than this
# the full fit's shift is held within the whole-pixel search's bound plus this (pixels along
# an axis: the start's neighbourhood); one that reaches it is not determined
NEIGHBOURHOOD_PIXELS = 1.0
# a jackknife refit stops where its shift is this far (pixels, along an axis) from the full
# fit's, or where its overlap runs out: counted there (`_Fit.solve`)
REFIT_REACH_PIXELS = 3.0
# a shift known this well (in pixels) is not warned of as a possible artefact; one not
# significantly different from zero is still said not applied (`registration_concerns`)
NEGLIGIBLE_SD_PIXELS = 0.1
CHI2_2DOF_95 = 5.991  # 95 % point of chi-square with 2 degrees of freedom
MAX_CORRELATION = 0.999  # of the shift's x and y errors, in its significance
# A shift left out lies within its SDs' 95 % region (2.45 SD from zero: 0.61 pixel with both
# SDs at POOR_SD_PIXELS) or its covariance's, whose long axis reaches √(5.99 (σx² + σy²)) at a
# correlation near ±1 (0.87 pixel): said in `registration_notes`
POOR_SD_PIXELS = 0.25  # an SD above this (in pixels) is warned of whatever the shift
MISFIT_RATIO = 2.0  # residual over noise, or jackknife SD over the sandwich's: a misfit
UM = 1e-6


@dataclass(frozen=True)
class Registration:
    """How to carry the moving map onto the reference grid, and how well that is known."""

    shift: tuple[float, float]  # (dx, dy) m
    shift_sd: tuple[float, float]  # m
    rotation: float = 0.0  # rad, counter-clockwise, about the grid centre
    rotation_sd: float = 0.0  # rad
    offset: float = 0.0  # T, reference minus moved: a constant the fit allowed between them
    rms_residual: float = float("nan")  # T, of reference - moved - offset on the overlap
    pixels: int = 0  # overlap used in the fit
    # the SD from the residual alone, its autocovariance's (scaled as shift_sd is by the
    # misfit: `_misfit_factor`; `shift_sd` adds the jackknife's over blocks of the map in
    # quadrature): far below shift_sd, the maps differ by more than a shift and the shift
    # found depends on which part of them is used
    noise_shift_sd: tuple[float, float] = (0.0, 0.0)
    noise_rms: float = float("nan")  # T, the residual's RMS were the maps alike but for noise
    # of the x and y errors of the shift (-1 … 1): with shift_sd, the shift's covariance
    shift_correlation: float = 0.0
    # the shift's significance decided by its SDs alone, not counting shift_correlation (a
    # recipe continued as a release that did so began it): `shift_is_significant`
    by_sds_alone: bool = False
    # why the fit determined no shift ("" where it did): `shift` is where it stopped, the
    # SDs NaN, and nothing is applied (`registration_concerns` says why)
    undetermined: str = ""


class _Resampler:
    """Samples of a map (NaN filled) at transformed positions, with their gradient.

    The map is split into a periodic part, shifted exactly by a Fourier phase when there is no
    rotation, and a smooth part carrying the edge jumps, resampled by quintic spline (as is
    everything when there is a rotation). A spline of the whole map is least accurate at the
    edges, where the induced signal of a grain near the edge would drown in its error.
    """

    def __init__(self, m: MapData) -> None:
        self.x0, self.y0 = float(m.x[0]), float(m.y[0])
        self.dx, self.dy = m.step
        periodic, smooth = periodic_smooth(fill_nan(m.bz))
        self.periodic_hat = np.fft.fft2(periodic)
        self.kx, self.ky = wavenumbers(m.shape, m.step)
        self.periodic = ndimage.spline_filter(periodic, order=5, mode="mirror")
        self.smooth = ndimage.spline_filter(smooth, order=5, mode="mirror")
        self.measured = np.isfinite(m.bz).astype(float)
        self.shape = m.shape

    def indices(self, qx: np.ndarray, qy: np.ndarray) -> list[np.ndarray]:
        """Fractional (row, column) indices of positions, on the first pair's spacing."""
        return [(qy - self.y0) / self.dy, (qx - self.x0) / self.dx]

    def _spline(self, coeffs: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
        return ndimage.map_coordinates(
            coeffs, self.indices(qx, qy), order=5, mode="mirror", prefilter=False
        )

    def _spline_gradient(
        self, coeffs: np.ndarray, qx: np.ndarray, qy: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        hx, hy = _FD_STEP * self.dx, _FD_STEP * self.dy
        gx = (self._spline(coeffs, qx + hx, qy) - self._spline(coeffs, qx - hx, qy)) / (2 * hx)
        gy = (self._spline(coeffs, qx, qy + hy) - self._spline(coeffs, qx, qy - hy)) / (2 * hy)
        return gx, gy

    def sample(
        self, qx: np.ndarray, qy: np.ndarray, shift: np.ndarray, angle: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values and gradient (d/dx, d/dy) at q, which is the grid moved by (shift, angle)."""
        values = self._spline(self.smooth, qx, qy)
        gx, gy = self._spline_gradient(self.smooth, qx, qy)
        if angle == 0.0:
            phased = self.periodic_hat * np.exp(-1j * (self.kx * shift[0] + self.ky * shift[1]))
            values = values + np.fft.ifft2(phased).real
            gx = gx + np.fft.ifft2(1j * self.kx * phased).real
            gy = gy + np.fft.ifft2(1j * self.ky * phased).real
        else:
            values = values + self._spline(self.periodic, qx, qy)
            px, py = self._spline_gradient(self.periodic, qx, qy)
            gx, gy = gx + px, gy + py
        return values, gx, gy

    def at_indices(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """Values at fractional (row, column) indices, by spline of both parts."""
        return ndimage.map_coordinates(
            self.smooth + self.periodic, [iy, ix], order=5, mode="mirror", prefilter=False
        )

    def onto_edge(
        self, qx: np.ndarray, qy: np.ndarray, reach: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Fractional (row, column) indices of positions, those past the map's edge by no more
        than `reach` (pixels along x, y) plus ROUND_OFF_PX moved onto it."""
        iy, ix = self.indices(qx, qy)
        return (_onto_edge(iy, self.shape[0] - 1, reach[1] + ROUND_OFF_PX),
                _onto_edge(ix, self.shape[1] - 1, reach[0] + ROUND_OFF_PX))

    def valid(self, iy: np.ndarray, ix: np.ndarray) -> np.ndarray:
        """Fractional (row, column) indices inside the grid with every neighbouring pixel
        measured."""
        w = ndimage.map_coordinates(self.measured, [iy, ix], order=1, mode="constant", cval=0.0)
        return w > 0.999


def _rot(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s], [s, c]])


def _source_positions(
    px: np.ndarray, py: np.ndarray, centre: np.ndarray, shift: np.ndarray, angle: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """q = R(-θ)(p - c - s) + c, and v = p - c - s (for the derivative in θ)."""
    vx, vy = px - centre[0] - shift[0], py - centre[1] - shift[1]
    r = _rot(-angle)
    return r[0, 0] * vx + r[0, 1] * vy + centre[0], r[1, 0] * vx + r[1, 1] * vy + centre[1], vx, vy


def _tukey(n: int, alpha: float) -> np.ndarray:
    """A window flat in the middle with cosine tapers over alpha/2 of each end."""
    w = np.ones(n)
    edge = int(alpha * (n - 1) / 2)
    if edge > 0:
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(edge) / edge))
        w[:edge] = ramp
        w[n - edge :] = ramp[::-1]
    return w


def _search_limits(reference: MapData, max_shift: float | None) -> tuple[int, int]:
    """The largest whole-pixel lags (x, y) the start is searched among: `max_shift`, or by
    default a quarter of the map along each axis (at least a pixel)."""
    ny, nx = reference.shape
    dx, dy = reference.step
    if max_shift is None:
        return max(1, nx // 4), max(1, ny // 4)
    return min(nx - 2, int(max_shift / dx) + 1), min(ny - 2, int(max_shift / dy) + 1)


def _whole_pixel_start(
    reference: MapData, moving: MapData, max_shift: float | None
) -> tuple[float, float]:
    """Peak of the windowed cross-correlation, refined by a parabola through its neighbours,
    among lags up to `max_shift` or, by default, a quarter of the map along each axis (at
    least a pixel): at half the map, the overlap is so small that the correlation of a few
    grains' fields can peak there by chance, and the fit then locked on a shift of half the
    map where the true one was under a pixel."""
    ny, nx = reference.shape
    window = np.outer(_tukey(ny, 0.3), _tukey(nx, 0.3))
    images = []
    for m in (reference, moving):
        finite = np.isfinite(m.bz)
        a = np.where(finite, m.bz - np.nanmean(m.bz), 0.0) * window
        images.append(np.fft.rfft2(a, s=(2 * ny, 2 * nx)))
    corr = np.fft.fftshift(np.fft.irfft2(images[0] * np.conj(images[1]), s=(2 * ny, 2 * nx)))
    lag_y = np.arange(2 * ny) - ny
    lag_x = np.arange(2 * nx) - nx
    dx, dy = reference.step
    limit_x, limit_y = _search_limits(reference, max_shift)
    allowed = (np.abs(lag_y)[:, None] <= limit_y) & (np.abs(lag_x)[None, :] <= limit_x)
    corr = np.where(allowed, corr, -np.inf)
    iy, ix = np.unravel_index(int(np.argmax(corr)), corr.shape)

    def parabola(c_minus: float, c0: float, c_plus: float) -> float:
        denom = c_minus - 2 * c0 + c_plus
        if not np.isfinite(denom) or denom >= 0:
            return 0.0
        return float(np.clip(0.5 * (c_minus - c_plus) / denom, -0.5, 0.5))

    fx = parabola(corr[iy, ix - 1], corr[iy, ix], corr[iy, ix + 1]) if 0 < ix < 2 * nx - 1 else 0
    fy = parabola(corr[iy - 1, ix], corr[iy, ix], corr[iy + 1, ix]) if 0 < iy < 2 * ny - 1 else 0
    return (lag_x[ix] + fx) * dx, (lag_y[iy] + fy) * dy


def _sandwich_covariance(
    jac_images: np.ndarray, residual: np.ndarray, used: np.ndarray, hessian: np.ndarray
) -> np.ndarray:
    """H^-1 J^T C J H^-1 with C the residual's autocovariance, Bartlett-weighted over lags up
    to the map's size, and H the Hessian of half the sum of squares.

    The window spans the whole map: the induced field left in the residual of an in-field
    against a zero-field scan is as wide as a grain's field seen from the sensor, most of a
    21 × 11 map, and a window cut at a quarter of the map (two rows there) left out most of
    its covariance (benchmarks/registration_significance.py). The lags fewer than a quarter
    of the pixels pair at are left out, their covariance too poorly known.

    jac_images (p, ny, nx) and residual (ny, nx) are zero outside `used`.
    """
    p, ny, nx = jac_images.shape
    shape = (2 * ny, 2 * nx)
    r_hat = np.fft.rfft2(residual, s=shape)
    u_hat = np.fft.rfft2(used.astype(float), s=shape)
    pairs = np.fft.irfft2(u_hat * np.conj(u_hat), s=shape)
    autocov = np.fft.irfft2(r_hat * np.conj(r_hat), s=shape) / np.maximum(pairs, 1.0)
    autocov[pairs < 0.25 * used.sum()] = 0.0
    kx = np.fft.fftfreq(shape[1], 1.0 / shape[1])
    ky = np.fft.fftfreq(shape[0], 1.0 / shape[0])
    bartlett = np.outer(np.clip(1 - np.abs(ky) / ny, 0, None),
                        np.clip(1 - np.abs(kx) / nx, 0, None))
    weighted = np.fft.rfft2(autocov * bartlett)
    j_hat = np.fft.rfft2(jac_images, s=shape)
    meat = np.empty((p, p))
    for a in range(p):
        for b in range(a, p):
            # sum over lags of C(lag) * sum_q J_a(q) J_b(q + lag), via the convolution theorem
            cross = np.fft.irfft2(np.conj(j_hat[a]) * j_hat[b] * np.conj(weighted), s=shape)
            meat[a, b] = meat[b, a] = cross[0, 0]
    bread = np.linalg.inv(hessian)
    return bread @ meat @ bread


class _Fit:
    """Least squares of reference - moved(θ) - offset, θ = (shift x, shift y[, angle], offset),
    over the reference pixels in a mask whose sources lie inside the measured moving map."""

    def __init__(self, reference: MapData, moving: MapData, rotation: bool) -> None:
        self.step = require_regular(reference)
        self.ref_valid = np.isfinite(reference.bz)
        self.ref = np.where(self.ref_valid, reference.bz, 0.0)
        self.resampler = _Resampler(moving)
        self.px, self.py = np.meshgrid(reference.x, reference.y)
        self.centre = np.array([reference.x.mean(), reference.y.mean()])
        self.extent = float(np.hypot(np.ptp(reference.x), np.ptp(reference.y)))
        self.rotation = rotation
        self.n_par = SHIFT_PARAMETERS + (1 if rotation else 0)

    def linearise(
        self, theta: np.ndarray, keep: np.ndarray, fixed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Jacobian images (p, ny, nx), residual and the pixels used (`fixed`, if given)."""
        shift, angle = theta[:2], float(theta[2]) if self.rotation else 0.0
        qx, qy, vx, vy = _source_positions(self.px, self.py, self.centre, shift, angle)
        used = (keep & self.resampler.valid(*self.resampler.indices(qx, qy))
                if fixed is None else fixed)
        if used.sum() < MIN_PIXELS_PER_PARAMETER * self.n_par:
            raise InputError(
                f"the maps overlap in only {int(used.sum())} measured pixels after a shift of "
                f"({shift[0] * 1e6:.3g}, {shift[1] * 1e6:.3g}) µm; too few to register: "
                f"expected at least {MIN_PIXELS_PER_PARAMETER * self.n_par} (two scans of the "
                "same area, or a subtraction without registering)"
            )
        values, gx, gy = self.resampler.sample(qx, qy, shift, angle)
        r = _rot(-angle)
        # d(moved)/d(shift_j) = -sum_i g_i R_ij ;  d(moved)/d(theta) = g . (-dR/dphi v)
        cols = [-(gx * r[0, 0] + gy * r[1, 0]), -(gx * r[0, 1] + gy * r[1, 1])]
        if self.rotation:
            d = np.array([[-r[1, 0], -r[0, 0]], [r[0, 0], -r[1, 0]]])  # dR(phi)/dphi
            cols.append(-(gx * (d[0, 0] * vx + d[0, 1] * vy) + gy * (d[1, 0] * vx + d[1, 1] * vy)))
        cols.append(np.ones_like(gx))
        jac = np.where(used, np.stack(cols), 0.0)
        residual = np.where(used, self.ref - values - theta[-1], 0.0)
        return jac, residual, used

    def _step(self, theta: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """The Gauss-Newton step from `theta` on the pixels in `keep` (InputError where they
        overlap too little to fit)."""
        jac, residual, _ = self.linearise(theta, keep)
        step, *_ = np.linalg.lstsq(jac.reshape(self.n_par, -1).T, residual.ravel(), rcond=None)
        return step

    def _converged(self, step: np.ndarray) -> bool:
        return bool(abs(step[0]) < 1e-4 * self.step[0] and abs(step[1]) < 1e-4 * self.step[1])

    def solve_within(self, theta: np.ndarray, bound: np.ndarray, max_iterations: int
                     ) -> tuple[np.ndarray, str]:
        """Gauss-Newton from `theta` over the reference's measured pixels, its shift held
        within ±`bound` (m, along x and y): the result, and "" where it ended inside,
        else why it determined no shift (it reached the bound or its overlap ran out), the
        result then where it stopped. Unbounded, on maps that differ by a strong induced
        field, it wandered off the overlap (8 of 600 maps of 8 grains whose induced moments
        are 1.5 times the remanent ones) and failed the subtraction. One that has not met
        its tolerance after `max_iterations`, inside the bound, is kept as before: that is
        common (5 of 20 maps of 4 grains alike but for noise)."""
        theta = theta.copy()
        for _ in range(max_iterations):
            try:
                step = self._step(theta, self.ref_valid)
            except InputError as exc:
                return theta, f"its overlap ran out ({exc})"
            theta += step
            bounded = np.clip(theta[:2], -bound, bound)
            if np.any(bounded != theta[:2]):
                theta[:2] = bounded
                return theta, (f"the fit reached the bound of ±({bound[0] / UM:.3g}, "
                               f"{bound[1] / UM:.3g}) µm its search allows")
            if self._converged(step):
                break
        return theta, ""

    def solve(self, theta: np.ndarray, keep: np.ndarray, max_iterations: int,
              around: np.ndarray) -> np.ndarray:
        """A jackknife refit: Gauss-Newton from `theta` on the pixels in `keep`.

        `around` (the full solution) bounds it and it never raises: an iterate whose shift
        lies more than REFIT_REACH_PIXELS from it along an axis is taken back onto that
        bound, and one whose overlap is too small to fit ends the refit, each the refit's
        result. A refit that runs off so is no error of the registration but evidence that
        the shift is poorly determined: it counts as far as it went.
        """
        theta = theta.copy()
        reach = REFIT_REACH_PIXELS * np.array(self.step)
        for _ in range(max_iterations):
            try:
                step = self._step(theta, keep)
            except InputError:
                return theta
            theta += step
            bounded = np.clip(theta[:2], around[:2] - reach, around[:2] + reach)
            if np.any(bounded != theta[:2]):
                theta[:2] = bounded
                return theta
            if self._converged(step):
                break
        return theta

    def pixel_hessians(self, theta: np.ndarray, jac: np.ndarray, used: np.ndarray
                       ) -> np.ndarray:
        """Each pixel's part (p, p, ny, nx) of the Hessian of half the sum of squares: the
        derivative of its gradient -J^T r by central differences in shift and angle, the
        offset's row exact. Summed over pixels and made symmetric, it is the Hessian
        (`symmetric_sum`); summed over some, that of a fit to those alone.

        Not the Gauss-Newton J^T J: the moving map's noise enters J through its gradient,
        which white noise makes as large as the signal's on a coarse grid, so J^T J counts
        noise as curvature and shrinks the standard deviations (by 2.6 on a 21 × 11 grid of
        20 µm steps, 100 µm above the sample). The residual's second-derivative term cancels
        that in expectation.
        """
        p = self.n_par
        sizes = [_FD_STEP * self.step[0], _FD_STEP * self.step[1]]
        if self.rotation:
            sizes.append(_FD_STEP * min(self.step) / self.extent)
        h = np.zeros((p, p, *used.shape))
        for k, size in enumerate(sizes):
            delta = np.zeros(p)
            delta[k] = size
            grads = []
            for sign in (1.0, -1.0):
                j, r, _ = self.linearise(theta + sign * delta, used, used)
                grads.append(-(j * r))
            h[:, k] = (grads[0] - grads[1]) / (2 * size)
        h[:, -1] = jac  # d(-J^T r)/d(offset), exact
        h[-1, :] = jac
        return h

    def jackknife(self, theta: np.ndarray, jac: np.ndarray, residual: np.ndarray,
                  used: np.ndarray, pixel_hessians: np.ndarray, max_iterations: int) -> np.ndarray:
        """Covariance of θ from refits that leave out one block of a JACKKNIFE_BLOCKS grid.

        The shift absorbs the part of the induced field that looks like a shift of the
        remanent map, so the residual understates the misfit; how much the shift moves when a
        block (a grain's induced field) is left out shows it.

        Each refit is carried to convergence, as the full fit is, but starts from a Newton
        step off the full solution, taken on the linearisation made there (the pixels'
        gradients and Hessians, less the block's), so it needs fewer resamplings of the
        moving map: about a quarter of the time on a 111 × 111 map. A step of more than
        NEWTON_START_PIXELS, or a Hessian with no minimum, starts from the full solution
        instead. The Newton step alone, or one or two Gauss-Newton steps after it, left 16,
        11 or 5 % of the SDs more than 5 % off those of refits to convergence on 21 × 11 maps
        of a few grains, where leaving out a block moves the shift by a pixel or more.
        """
        ny, nx = used.shape
        nby, nbx = (min(b, n) for b, n in zip(JACKKNIFE_BLOCKS, (ny, nx), strict=True))
        ey = np.linspace(0, ny, nby + 1).round().astype(int)
        ex = np.linspace(0, nx, nbx + 1).round().astype(int)
        gradient = jac * residual  # each pixel's part of -d(half the sum of squares)/dθ
        fits = []
        for i in range(nby):
            for j in range(nbx):
                keep = used.copy()
                keep[ey[i] : ey[i + 1], ex[j] : ex[j + 1]] = False
                if keep.sum() < MIN_PIXELS_PER_PARAMETER * self.n_par:
                    continue
                h = symmetric_sum(pixel_hessians[:, :, keep])
                step = _newton_step(h, gradient[:, keep].sum(axis=1))
                start = theta
                if step is not None and np.all(
                        np.abs(step[:2]) <= NEWTON_START_PIXELS * np.array(self.step)):
                    start = theta + step
                fits.append(self.solve(start, keep & self.ref_valid, max_iterations,
                                       around=theta))
        if len(fits) < 2:
            return np.zeros((self.n_par, self.n_par))
        d = np.array(fits) - np.mean(fits, axis=0)
        return (len(fits) - 1) / len(fits) * (d.T @ d)


def _newton_step(h: np.ndarray, gradient: np.ndarray) -> np.ndarray | None:
    """H^-1 g, or None where H is not positive definite (no minimum nearby to step to)."""
    try:
        c = np.linalg.cholesky(h)
    except np.linalg.LinAlgError:
        return None
    return np.linalg.solve(c.T, np.linalg.solve(c, gradient))


def symmetric_sum(pixel_hessians: np.ndarray) -> np.ndarray:
    """The Hessian of pixel parts (p, p, pixels...): their sum, made symmetric."""
    h = pixel_hessians.reshape(*pixel_hessians.shape[:2], -1).sum(axis=-1)
    return 0.5 * (h + h.T)


def estimate_registration(
    reference: MapData,
    moving: MapData,
    *,
    rotation: bool = False,
    max_shift: float | None = None,
    max_iterations: int = 30,
) -> Registration:
    """The shift (and rotation, if asked) that carries `moving` onto `reference`.

    Both maps must share one grid. `max_shift` (m) bounds the search; default a quarter of the
    map. The fit is held within the search's bound plus NEIGHBOURHOOD_PIXELS: where it
    reaches that or runs out of overlap, the shift is not determined
    (`Registration.undetermined`). InputError if the maps, unshifted, overlap too little to fit.
    """
    require_same_grid(reference, moving)
    fit = _Fit(reference, moving, rotation)
    start = np.zeros(fit.n_par)
    start[-1] = np.nanmean(reference.bz) - np.nanmean(moving.bz)
    fit.linearise(start, fit.ref_valid)  # InputError where the maps overlap too little
    start[:2] = _whole_pixel_start(reference, moving, max_shift)
    bound = (np.array(_search_limits(reference, max_shift)) + NEIGHBOURHOOD_PIXELS) * np.array(
        fit.step)
    theta, undetermined = fit.solve_within(start, bound, max_iterations)
    noise_rms = float(np.hypot(_pixel_noise(reference.bz), _pixel_noise(moving.bz)))
    if undetermined:
        return Registration(
            shift=(float(theta[0]), float(theta[1])), shift_sd=(np.nan, np.nan),
            rotation=float(theta[2]) if rotation else 0.0,
            rotation_sd=np.nan if rotation else 0.0, offset=float(theta[-1]),
            noise_shift_sd=(np.nan, np.nan), noise_rms=noise_rms, undetermined=undetermined)
    jac, residual, used = fit.linearise(theta, fit.ref_valid)
    pixel_hessians = fit.pixel_hessians(theta, jac, used)
    rms_residual = float(np.sqrt(np.sum(residual**2) / used.sum()))
    misfit = _misfit_factor(rms_residual, noise_rms)
    sandwich = misfit * _sandwich_covariance(jac, residual, used, symmetric_sum(pixel_hessians))
    jackknife = misfit * fit.jackknife(theta, jac, residual, used, pixel_hessians,
                                       max_iterations)
    covariance = _covariance(sandwich, jackknife)
    sd = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    sd_sandwich = np.sqrt(np.clip(np.diag(sandwich), 0.0, None))
    return Registration(
        shift=(float(theta[0]), float(theta[1])),
        shift_sd=(float(sd[0]), float(sd[1])),
        rotation=float(theta[2]) if rotation else 0.0,
        rotation_sd=float(sd[2]) if rotation else 0.0,
        offset=float(theta[-1]),
        rms_residual=rms_residual,
        pixels=int(used.sum()),
        noise_shift_sd=(float(sd_sandwich[0]), float(sd_sandwich[1])),
        noise_rms=noise_rms,
        shift_correlation=_correlation(covariance[:2, :2]),
    )


def _covariance(sandwich: np.ndarray, jackknife: np.ndarray) -> np.ndarray:
    """The estimate's covariance from the sandwich's and the jackknife's: their sum.

    Each falls short where the maps differ by an induced field: the sandwich of what the
    shift absorbed, the jackknife where a grain's field spans several blocks. The larger of
    the two SDs (with the correlation of the estimate with the larger 95 % region) called a
    shift at zero significant 15.8 % of the time on maps of four grains with an induced field
    of 0.2 of their remanence, the sum 7.1 %; on maps alike but for noise the sum calls 4.2
    and 0.4 % (four and eight grains), and finds a shift of half a pixel 5 to 14 points less
    often than the larger (benchmarks/registration_significance.py).
    """
    return sandwich + jackknife


def _misfit_factor(rms_residual: float, noise_rms: float) -> float:
    """(residual RMS / noise RMS)², where above 1: what the covariance estimates are scaled by.

    The residual shows only the part of the maps' difference that the shift did not absorb;
    the part it did (an induced field shaped like a shift) moves the shift unseen, by more
    the larger the part seen. Scaled so, the SDs on maps differing by an induced field come
    near those differing by noise alone in how often a shift at zero is called significant
    (benchmarks/registration_significance.py); on maps alike but for noise the ratio is
    about 1, and nothing changes. Both estimates grow with the misfit already, yet neither
    scaled (nor one alone) is better: on maps of 8 grains whose induced moments are 1.5
    times the remanent ones, a shift at zero was then called significant 20 % (6.5 %) of
    the time against 1.5 % with both scaled, for as many more true shifts found.
    """
    if not (np.isfinite(noise_rms) and noise_rms > 0):
        return 1.0
    return max(1.0, (rms_residual / noise_rms) ** 2)


def _correlation(cov: np.ndarray) -> float:
    """The correlation of a 2 × 2 covariance; 0 where a variance is not positive."""
    if cov[0, 0] <= 0 or cov[1, 1] <= 0:
        return 0.0
    return float(np.clip(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]), -1.0, 1.0))


def _pixel_noise(bz: np.ndarray) -> float:
    """The white noise's RMS in a map, from its second differences between neighbouring
    pixels (6 σ² for white noise; a field seen from a sensor's height barely curves from one
    pixel to the next): the median absolute one, along the axis where it is least."""
    out = []
    for d in (np.diff(bz, 2, axis=1), np.diff(bz, 2, axis=0)):
        d = d[np.isfinite(d)]
        if d.size:
            out.append(1.4826 * float(np.median(np.abs(d - np.median(d)))) / np.sqrt(6.0))
    return min(out) if out else float("nan")


# how a caller forces a shift not significantly different from zero, as the warning says it
FORCE_HINT = "--apply-insignificant-shift (apply_insignificant_shift = true in a recipe)"
# how a caller subtracts the maps as they lie, as the warnings say it
NO_REGISTER_HINT = "--no-register, or register = false in a recipe"


class RegistrationWarning(UserWarning):
    """The shift found may be an artefact of the maps' differences rather than a real shift."""


class RegistrationNote(Note, RegistrationWarning):
    """A shift found and, by default, left out, known well enough that no more than a small
    part of a pixel is left out: the expected outcome, said, not a fault. A
    RegistrationWarning too, so that the warning filters set for those decide it alike."""


def registration_notes(reg: Registration, step: tuple[float, float], *,
                       insignificant_applied: bool = True) -> list[str]:
    """What is said of `reg` as a note, not a warning (`registration_concerns`): the shift
    found not significantly different from zero and not applied, as by default, its SD at
    most POOR_SD_PIXELS (within its 95 % region, so under 0.87 pixel: leaving it out moves
    nothing by more), with the maps' misfit where there is one (`_left_out`). A larger SD
    leaves out a shift that may be a pixel or more: warned of."""
    if reg.undetermined:
        return []
    if _said_not_applied(reg, insignificant_applied) and not _poorly_known(reg, step):
        return [_left_out(reg, step)]
    return []


def registration_concerns(reg: Registration, step: tuple[float, float], *,
                          insignificant_applied: bool = True) -> list[str]:
    """Why applying `reg` to maps of pixel `step` (m) may do more harm than good, and whether
    it was applied; none when the shift is applied and known to a small fraction of a pixel
    (NEGLIGIBLE_SD_PIXELS), or is significant and the maps agree.

    - not significant: the shift is within its 95 % region about zero (`shift_is_significant`),
      so applying it moves the map by an unknown amount; said as not applied unless
      `insignificant_applied` (the caller forced it), however precise: a shift found and
      not applied is always said, as a note (`registration_notes`) where it is known to
      POOR_SD_PIXELS, else here, with what follows said in the same words (`_left_out`);
    - misfit (`_misfit`): the maps differ by more than a shift, and the shift applied may
      have absorbed the part of that difference (an induced field) shaped like one;
    - poorly determined: an SD above POOR_SD_PIXELS, where a few grains' induced fields
      moved the shift by a pixel or two on a 21 × 11 grid, even at several SD, unseen in the
      residual.
    Left out with no rotation applied, the registration changed nothing in the difference:
    neither the misfit nor the poor determination is then said as a risk of applying it, nor
    advised against by subtracting the maps as they lie, which they were. A rotation fitted
    is applied even where the shift is left out: the maps were not subtracted as they lie,
    and each concern is warned of with that advice. A shift not determined (the fit reached
    its bound or ran out of overlap) is said not applied, and why.
    """
    if reg.undetermined:
        return [_not_determined(reg)]
    left_out = ([_left_out(reg, step)] if _said_not_applied(reg, insignificant_applied)
                and _poorly_known(reg, step) else [])
    if not insignificant_applied and not shift_is_significant(reg) and reg.rotation == 0.0:
        return left_out
    sd = np.array(reg.shift_sd)
    said = _shift_said(reg, step)
    concerns = left_out
    if np.max(sd / np.array(step)) <= NEGLIGIBLE_SD_PIXELS:
        return concerns
    if not shift_is_significant(reg) and insignificant_applied:
        concerns.append(
            f"the registration's shift {said}, is not significantly different from zero; "
            "applying it may add an artefact to the difference: compare with the maps "
            f"subtracted as they lie ({NO_REGISTER_HINT})")
    misfit = _misfit(reg)
    if misfit:
        concerns.append(
            f"{misfit}: the registration's shift {said}, may have absorbed part of the induced "
            f"field: compare with the maps subtracted as they lie ({NO_REGISTER_HINT})")
    if _poorly_known(reg, step):
        concerns.append(
            f"the registration's shift {said}, is poorly determined: an induced field shaped "
            "like a shift of the remanent map moves it by as much without showing in the "
            f"residual: compare with the maps subtracted as they lie ({NO_REGISTER_HINT})")
    return concerns


def _undetermined_said(reg: Registration) -> str:
    return (f"the registration determined no shift: {reg.undetermined}, at "
            f"({reg.shift[0] / UM:.2f}, {reg.shift[1] / UM:.2f}) µm; the maps do not look "
            "enough alike (a strong induced field?)")


def _not_determined(reg: Registration) -> str:
    """A shift the fit did not determine, said left out (the maps subtracted as they lie)."""
    return f"{_undetermined_said(reg)}, so no shift is applied (the maps subtracted as they lie)"


class ShiftNotDetermined(InputError):
    """A shift forced (applied whatever its significance) that the registration did not
    determine: there is none to apply (`require_determined`)."""


def require_determined(reg: Registration) -> None:
    """ShiftNotDetermined where a shift asked to be applied whatever its significance was
    not determined: there is none to apply."""
    if reg.undetermined:
        raise ShiftNotDetermined(f"{_undetermined_said(reg)}: there is no shift to apply as "
                         f"{FORCE_HINT} asks; expected a subtraction without forcing it (the "
                         f"maps subtracted as they lie), or {NO_REGISTER_HINT}")


# Two maps whose RMS differ by this factor or more, where the registration found no shift,
# are not taken for one sample's: a unit prefix's step (nT read for µT) or another channel.
UNLIKE_RMS_RATIO = 1000.0


def require_alike(reg: Registration, in_field: MapData, remanent: MapData) -> None:
    """InputError where the registration determined no shift and the two maps' RMS differ
    UNLIKE_RMS_RATIO-fold or more: subtracted as they lie, the difference would be one of
    them; a map of no remanence that the user means to subtract is named by NO_REGISTER_HINT.
    """
    if not reg.undetermined:
        return
    rms = [float(np.sqrt(np.nanmean(np.square(m.bz)))) for m in (in_field, remanent)]
    low, high = min(rms), max(rms)
    if high > 0 and not low * UNLIKE_RMS_RATIO > high:
        raise InputError(
            f"{_undetermined_said(reg)}, and the maps' RMS differ {high / max(low, 1e-300):.3g}"
            f"-fold ({rms[0] / UM:.3g} µT in field against {rms[1] / UM:.3g} µT remanent: a unit "
            "or channel mistake?); expected two maps of one sample, their Bz in the units "
            f"their files name; or, to subtract them as they lie, {NO_REGISTER_HINT}")


def _misfit(reg: Registration) -> str:
    """"the maps differ by more than a shift (…)" where they do, else "": the residual's RMS
    is more than MISFIT_RATIO times the maps' noise, or leaving out blocks of the map moves
    the shift by more than MISFIT_RATIO times what the residual's autocovariance allows (the
    jackknife's SD, what `shift_sd` adds to `noise_shift_sd` in quadrature)."""
    sd, noise_sd = np.array(reg.shift_sd), np.array(reg.noise_shift_sd)
    jackknife_sd = np.sqrt(np.clip(sd**2 - noise_sd**2, 0.0, None))
    spread = float(np.max(jackknife_sd / np.maximum(noise_sd, 1e-300)))
    if spread <= MISFIT_RATIO and not reg.rms_residual > MISFIT_RATIO * reg.noise_rms:
        return ""
    left_out = (f", and leaving out parts of the map moves the shift by {spread:.1f} times "
                "what the residual allows" if spread > MISFIT_RATIO else "")
    return (f"the maps differ by more than a shift (residual {reg.rms_residual / UM:.3g} µT "
            f"RMS against {reg.noise_rms / UM:.3g} µT of noise{left_out})")


def _shift_said(reg: Registration, step: tuple[float, float]) -> str:
    sd, shift = np.array(reg.shift_sd), np.array(reg.shift)
    return (f"({shift[0] / UM:.2f} ± {sd[0] / UM:.2f}, {shift[1] / UM:.2f} ± {sd[1] / UM:.2f}) "
            f"µm, {np.max(sd / np.array(step)):.2f} pixel SD")


def _poorly_known(reg: Registration, step: tuple[float, float]) -> bool:
    return bool(np.max(np.array(reg.shift_sd) / np.array(step)) > POOR_SD_PIXELS)


def _said_not_applied(reg: Registration, insignificant_applied: bool) -> bool:
    """A shift found and left out (an exact zero left out changes nothing)."""
    return (not insignificant_applied and not shift_is_significant(reg)
            and bool(np.any(np.array(reg.shift) != 0.0)))


def _left_out(reg: Registration, step: tuple[float, float]) -> str:
    """The shift found said not applied; poorly determined, that it may be a real shift of a
    pixel or more; with the maps' misfit (SD above NEGLIGIBLE_SD_PIXELS, as where applied),
    that the shift found may have absorbed part of the induced field: a reason not to force
    it, where applied it is one to compare with the maps as they lie. With a rotation
    applied, those are warned of apart (`registration_concerns`), with that advice."""
    if reg.rotation != 0.0:
        return (f"the registration's shift {_shift_said(reg, step)}, is not significantly "
                "different from zero, so it is not applied (a zero shift, the rotation found "
                f"applied): {FORCE_HINT} applies it all the same")
    sd_pixels = float(np.max(np.array(reg.shift_sd) / np.array(step)))
    misfit = _misfit(reg) if sd_pixels > NEGLIGIBLE_SD_PIXELS else ""
    poorly = ("; it is so poorly determined that a real shift of a pixel or more may be what "
              "is left out" if _poorly_known(reg, step) else "")
    absorbed = (f"; {misfit}, so the shift found may have absorbed part of the induced field"
                if misfit else "")
    return (f"the registration's shift {_shift_said(reg, step)}, is not significantly "
            "different from zero, so it is not applied (the maps subtracted as they lie, a "
            f"zero shift){poorly}: {FORCE_HINT} applies it all the same{absorbed}")


ROUND_OFF_PX = 1e-6  # a source this close past the map's edge (in pixels) lies on it


def shift_is_significant(reg: Registration) -> bool:
    """Whether the shift differs from zero at 95 %: outside its 95 % region both by its SDs
    alone (the sum of the squares of each component over its SD) and by its covariance (SDs
    and x-y correlation, s^T C^-1 s), each a chi-square of 2 degrees of freedom against its
    95 % point (any shift at all with an SD of zero).

    Either test alone calls a shift at zero significant more often than it should. The SDs
    alone, on errors correlated at 0.9: 7.8 % of the time, not 5 %. The covariance, on
    realistic maps, where the correlation was that of the larger of two estimates that seldom
    agree on it: more often than the SDs alone (20 of 120 maps against 13 on the reviewer's
    maps of four grains; benchmarks/registration_significance.py). Outside both regions, a
    shift at zero is significant at most 5 % of the time with a known covariance whatever its
    correlation (2.9 % at ±0.9) and never more often than by the SDs alone. The correlation is held
    within ±MAX_CORRELATION, so that a degenerate covariance tests both axes still.
    `reg.by_sds_alone`: by its SDs alone, the correlation taken as zero."""
    shift, sd = np.array(reg.shift), np.array(reg.shift_sd)
    z = np.divide(shift, sd, out=np.where(shift != 0, np.inf, 0.0), where=sd > 0)
    if np.any(np.isinf(z)):
        return True
    correlation = 0.0 if reg.by_sds_alone else reg.shift_correlation
    rho = float(np.clip(correlation, -MAX_CORRELATION, MAX_CORRELATION))
    by_sds = z[0] ** 2 + z[1] ** 2
    by_covariance = (by_sds - 2 * rho * z[0] * z[1]) / (1 - rho**2)
    return bool(min(by_sds, by_covariance) >= CHI2_2DOF_95)


def apply_registration(moving: MapData, registration: Registration) -> MapData:
    """`moving` resampled (see `_Resampler`) so it lies on its grid as the reference did.

    NaN where the source of a pixel falls off the moving map or next to an unmeasured pixel,
    the map's extent taken to a round-off (ROUND_OFF_PX), so that a source on the first or
    last point, or a zero shift, keeps its pixel whatever the grid's floating point spacing.
    A shift that is not significantly different from zero (`shift_is_significant`) loses no
    pixel to it: a source past the outer edge, or past the last measured pixel before an
    unmeasured one (a scan cut off, unmeasured edge columns), by no more than the shift (plus
    the round-off) along that axis is moved onto that pixel and sampled there, an error no
    larger than not moving that pixel, which such a shift cannot be told from (a rotation's
    own reach is not covered). Without that, a shift of a few thousandths of a pixel blanked a
    whole edge row or column. A significant shift leaves NaN exactly on the pixels whose
    source is off the map or next to an unmeasured pixel.
    """
    require_regular(moving)
    resampler = _Resampler(moving)
    px, py = np.meshgrid(moving.x, moving.y)
    centre = np.array([moving.x.mean(), moving.y.mean()])
    shift = np.asarray(registration.shift, dtype=float)
    qx, qy, _, _ = _source_positions(px, py, centre, shift, registration.rotation)
    values, _, _ = resampler.sample(qx, qy, shift, registration.rotation)
    reach = (0.0, 0.0)
    if not shift_is_significant(registration):
        reach = (abs(shift[0] / moving.step[0]), abs(shift[1] / moving.step[1]))
    iy, ix = resampler.indices(qx, qy)
    edge_iy, edge_ix = resampler.onto_edge(qx, qy, reach)
    valid = resampler.valid(edge_iy, edge_ix)
    if reach != (0.0, 0.0):  # next to an unmeasured pixel: onto the nearest measured one
        near_iy = _onto_nearest(edge_iy, reach[1] + ROUND_OFF_PX)
        near_ix = _onto_nearest(edge_ix, reach[0] + ROUND_OFF_PX)
        moved = ~valid & resampler.valid(near_iy, near_ix)
        edge_iy, edge_ix = np.where(moved, near_iy, edge_iy), np.where(moved, near_ix, edge_ix)
        valid |= moved
    values = np.where((edge_ix != ix) | (edge_iy != iy),
                      resampler.at_indices(edge_iy, edge_ix), values)
    bz = np.where(valid, values, np.nan)
    return moving.with_bz(bz)


def _onto_nearest(index: np.ndarray, reach: float) -> np.ndarray:
    """Fractional indices, those within `reach` of a whole index moved onto it."""
    nearest = np.round(index)
    return np.where(np.abs(index - nearest) <= reach, nearest, index)


def _onto_edge(index: np.ndarray, last: int, reach: float) -> np.ndarray:
    """Fractional indices along an axis of points 0 … `last`, those past either end by at most
    `reach` moved onto it."""
    index = np.where((index < 0) & (index >= -reach), 0.0, index)
    return np.where((index > last) & (index <= last + reach), float(last), index)
