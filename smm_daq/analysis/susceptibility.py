"""Susceptibility (or magnetization) map of a thin layer from one Bz map, when the direction of
the magnetization is known: along the applied field for an induced map (M = χ H, H = B/µ0),
along the IRM direction for a remanence given in a known direction.

The χ found is the apparent susceptibility: H is the applied field, not the field inside the
grains, so a grain of intrinsic χ and demagnetizing factor N along the field gives
χ/(1 + Nχ) (the demo's crystals: about 2.3 SI for an intrinsic 3 in their plane). Under a
vertical field, a χ spread evenly over the whole map makes almost no field inside it (only
its edges do), so without a support the map's mean χ is poorly determined (grains tens of %
low on a noisy map): give the sample's outline (`support`, `--support-polygon`) where it is
known.

Model: the layer lies between z = -t and 0 (t = `thickness`), each pixel a cell dx × dy × t
uniformly magnetized M_j u (u the known unit direction); Bz is averaged over the sensor's
w × l area at height h. The field of such a layer is a convolution, whose transfer function
in closed form is (k = |(kx, ky)|, numpy's FFT sign convention)

    T(k) = µ0/2 · e^{-k h} (1 - e^{-k t}) / k · (k uz - i kx ux - i ky uy)
           · sinc(kx w/2) sinc(ky l/2) · sinc(kx dx/2) sinc(ky dy/2)

(the last pair: the cell's own extent). That is the spectrum of the continuous field; the
map samples it on the grid, so the grid's transfer adds its aliases T(k + 2π (m/dx, n/dy))
(`layer_transfer`), which matter when the sensor is within a few pixels of the layer.
T(0) = 0, so the map's mean says nothing about M; a free constant offset is fitted with M,
which also absorbs the applied field's leakage into Bz.
For an in-plane direction T also vanishes on the line k ⊥ u (a layer magnetized along stripes
parallel to u makes no field); the constraint that M is zero outside the map (or outside a
given support) is what pins those components down, so M is solved on a padded grid with M
confined to the support, not by a plain division in the Fourier domain.

Solution: Tikhonov, min ‖A M + c - d‖² + λ (‖M‖² + ℓ² ‖∇M‖²) over measured pixels, by
conjugate gradients preconditioned with the Fourier-diagonal 1/(|T|² + λ (1 + k²ℓ²)); every
product with A is an FFT. Because T → 0 as k → 0 (T ∝ k t for k t ≪ 1), a penalty on ‖M‖²
alone shrinks whole grains (long wavelengths) by ~20 %; weighting the penalty towards short
wavelengths with ℓ = the sensor height (the scale the map resolves; the prior is then a
Gaussian field of that correlation length) keeps a grain's integrated χ within ~10 % where
the map's signal is well above its noise. At a lower signal the λ chosen shrinks it more: on
the simulator's crystals at 40 µT (2 µT of induced field over 0.35 µT of noise, 100 µm up at
50 µm steps) the integrated χ read 17 to 28 % low by GCV (4 to 18 % with the sample's outline
as support), and χ from one map at 20 µT lower still than at 40 µT: maps at several fields
combined (`smm_daq.analysis.field_series`) shrink it less.

λ is chosen by a stated criterion, on the Fourier-diagonal (periodic) approximation of the
problem, where both are cheap sums over wavenumbers:
- "discrepancy" (when the map's noise σ is known): the residual's mean square equals σ²;
- "gcv" (otherwise): generalised cross-validation; σ² is then estimated from its residual.

Uncertainty: the posterior SD of the Gaussian model behind Tikhonov (noise σ, prior M with
spectrum σ²/(λ (1 + k²ℓ²))), diag(σ² (AᵀWA + λP)⁻¹), approximated pixel by pixel as
σ² mean_k 1/(c_j |T_k|² + λ (1 + k²ℓ²)), with c_j the local data coverage (the measured pixels seen
through pixel j's own field footprint, 1 well inside the map, ~½ at an edge): so pixels under
gaps and at the edges get the larger SD they deserve, up to the prior SD where nothing
constrains them. It holds the noise and the unresolved part (wavenumbers the layer's field
does not reach the sensor at); it does not know about a wrong model (thickness, direction).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy.optimize import minimize_scalar

from smm_daq.analysis.fill import fill_nan
from smm_daq.analysis.fourier import periodic_smooth
from smm_daq.analysis.grids import require_regular
from smm_daq.analysis.noise import bends_at_pixel_scale, white_noise_floor
from smm_daq.articles import with_article
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

MU0 = 4e-7 * np.pi
CRITERIA = ("discrepancy", "gcv")
_PAD_HEIGHTS = 8.0  # pad the solution grid by this many (height + thickness) on every side
_COVERAGE_LEVELS = 33
# λ / max|T|² searched over 1e-8..1e4: below, the conjugate gradients stall (the condition
# number grows as 1/λ); a map that asks for less (noise < 1e-4 of the signal, or a model that
# cannot fit it) gets the floor, and the residual then says so
_LOG_LAMBDA_RANGE = (-8.0, 4.0)
# the grid's transfer sums aliases until they fall below this fraction of its peak, when
# there are at most _MAX_ALIAS_TERMS of them (a sensor a few pixels up or more); else it is
# the spectrum of the cell's sampled field
_ALIAS_TOLERANCE = 1e-9
_MAX_ALIAS_TERMS = 9
# a GCV λ within this many decades of the search's floor, with σ under the map's own noise
# floor by this factor, fits the noise (see `_check_gcv_balance`)
_GCV_FLOOR_DECADES = 0.5
_GCV_NOISE_RATIO = 3.0
_LIFT_STEPS = 4  # pixels: e^{-2π·4} ≈ 1e-11, no alias left at the split's lifted heights
_LIFT_ORDER = 4  # the near part decays as r⁻⁷ ...
# ... and is summed over all its periodic images within this many lifts (128 pixels) of the
# cell, however small the grid: the tail beyond misses ~1e-6 of T (cut at half a 64-pixel
# grid instead, 2e-4; at half a 16-pixel one, 4e-2)
_NEAR_REACH_LIFTS = 32
_WORKERS = 2  # FFT threads: the machine this is built for has two cores
# the padded solution grid's size at most: a dozen arrays of it are held (2 GiB at this size),
# and each of up to 500 iterations takes half a dozen FFTs of it; a map 500 µm wide at 1 µm
# under a 30 µm layer 100 µm down pads to 2,600² pixels, a quarter of it
_MAX_GRID_PIXELS = 2**24


@dataclass(frozen=True)
class LayerInversion:
    """A magnetization (A/m) or susceptibility (SI) map of the layer and its uncertainty."""

    values: np.ndarray  # (ny, nx): M along `direction` in A/m, or χ (SI); NaN off the support
    sd: np.ndarray  # (ny, nx) posterior SD, same unit
    predicted: MapData  # the model's Bz (T) on the map's grid, offset included
    offset: float  # T, the fitted constant
    direction: np.ndarray  # (3,) unit vector of the magnetization
    thickness: float  # m
    regularization: float  # λ of the magnetization problem, (T m / A)²
    criterion: str  # "discrepancy", "gcv" or "given"
    noise: float  # σ in T: given, or estimated by GCV
    residual_rms: float  # T, of the map minus `predicted` over measured pixels
    iterations: int  # conjugate-gradient iterations
    converged: bool  # the normal equations' residual fell below the tolerance
    unit: str  # "A/m" or "SI"
    correlation_length: float  # ℓ (m) of the penalty ‖M‖² + ℓ²‖∇M‖², the default resolved


def _check_geometry(m: MapData, thickness: float) -> tuple[float, tuple[float, float]]:
    label = f"'{m.name}'" if m.name else "the map"
    if m.height is None or not (np.isfinite(m.height) and m.height > 0):
        raise InputError(f"{label} has no sensor height (got {m.height!r}); expected one > 0 m")
    if m.sensor_size is None:
        raise InputError(f"{label} has no sensor size; expected one ((0, 0) for a point sensor)")
    w, l = (float(v) for v in m.sensor_size)
    if not (w >= 0 and l >= 0):
        raise InputError(f"{label} has sensor size {m.sensor_size!r} m; expected two lengths ≥ 0")
    if not (np.isfinite(thickness) and thickness > 0):
        raise InputError(f"layer thickness is {thickness!r} m; expected a number > 0")
    return float(m.height), (w, l)


def _check_grid(m: MapData, big: tuple[float, float], height: float, thickness: float) -> None:
    """InputError when the map padded by 8 (height + thickness) on each side, at its step,
    is more pixels than the inversion can hold and iterate on in reasonable time."""
    if big[0] * big[1] <= _MAX_GRID_PIXELS:
        return
    label = f"'{m.name}'" if m.name else "the map"
    ny, nx = m.shape
    raise InputError(
        f"{label} ({nx} × {ny} pixels) under {with_article(f'{thickness * 1e6:g}')} µm layer "
        "with the sensor "
        f"{height * 1e6:g} µm above it needs a solution grid padded by {_PAD_HEIGHTS:g} × "
        f"(height + thickness) on each side: {_count(big[1])} × {_count(big[0])} pixels, "
        f"more than the {_MAX_GRID_PIXELS:,} the inversion handles; expected a thinner "
        "layer, a lower sensor or a coarser map (resampled to a larger step)")


def _count(n: float) -> str:
    return f"{n:,.0f}" if n < 1e12 else f"{n:.3g}"


def _alias_orders(height: float, step: float) -> int:
    """How many aliases on each side of the band the grid's transfer adds along an axis of
    `step`: at the band's edge π/step the n-th lies (2n − 1)π/step out, where T has fallen by
    e^{-(2n−1)π h/step} (times a factor ~ (2n−1)π h/step that the margin of ln 10 covers);
    those below _ALIAS_TOLERANCE of the peak are left out (all of them when h ≳ 7 steps)."""
    reach = (np.log(1 / _ALIAS_TOLERANCE) + np.log(10.0)) / (np.pi * height / step)
    return max(int(np.ceil((reach + 1) / 2)) - 1, 0)


def layer_transfer(
    shape: tuple[int, int],
    step: tuple[float, float],
    direction: np.ndarray,
    *,
    height: float,
    thickness: float,
    sensor_size: tuple[float, float],
) -> np.ndarray:
    """T (ny, nx//2 + 1) for `numpy.fft.rfft2` of a (ny, nx) grid: Bz in T per A/m of M.

    The exact spectrum of the field sampled on the grid, so that the inverse FFT is the
    cell's field at the grid's offsets even when the sensor is no higher than a few pixels
    above the layer (where the band-limited T alone is off by e^{-π h/dx}). Where few aliases
    matter, the closed form T(k) of the module docstring summed over them (`_aliased`);
    nearer the layer their number grows as (step/h)², and the spectrum of the cell's field
    itself, computed in closed form at every offset of the grid (`_sampled`), costs the same
    at any height.
    """
    transfer = _sampled if _samples_near_field(height, step) else _aliased
    return transfer(shape, step, direction, height=height, thickness=thickness,
                    sensor_size=sensor_size)


def _aliased(shape: tuple[int, int], step: tuple[float, float], direction: np.ndarray, *,
             height: float, thickness: float, sensor_size: tuple[float, float]) -> np.ndarray:
    """`layer_transfer` as the closed form T(k) summed over its aliases T(k + 2π (m/dx,
    n/dy)) (Poisson summation), those below _ALIAS_TOLERANCE of the peak left out."""
    ny, nx = shape
    dx, dy = step
    kx0 = 2 * np.pi * np.fft.rfftfreq(nx, dx)[None, :]
    ky0 = 2 * np.pi * np.fft.fftfreq(ny, dy)[:, None]
    ux, uy, uz = direction
    w, l = sensor_size
    mx, my = _alias_orders(height, dx), _alias_orders(height, dy)
    total = np.zeros(np.broadcast_shapes(kx0.shape, ky0.shape), dtype=complex)
    for i in range(-mx, mx + 1):
        kx = kx0 + 2 * np.pi * i / dx
        for j in range(-my, my + 1):
            ky = ky0 + 2 * np.pi * j / dy
            k = np.hypot(kx, ky)
            safe = np.where(k > 0, k, 1.0)
            depth = np.where(k > 0, -np.expm1(-safe * thickness) / safe, thickness)
            t = 0.5 * MU0 * np.exp(-k * height) * depth * (k * uz - 1j * (kx * ux + ky * uy))
            t *= np.sinc(kx * w / (2 * np.pi)) * np.sinc(ky * l / (2 * np.pi))
            t *= np.sinc(kx * dx / (2 * np.pi)) * np.sinc(ky * dy / (2 * np.pi))
            total += t
    return total


def _folded_offsets(n: int, step: float, reach: float) -> tuple[np.ndarray, np.ndarray]:
    """Offsets −R … R steps, R = max(⌊n/2⌋, ⌈reach/step⌉), and the FFT index each lands on:
    a grid smaller than 2 `reach` gets every periodic image of the kernel within `reach`, and
    for an even n both ends of −n/2 … n/2 land on the Nyquist index, so the two images there
    are summed (as the periodic kernel holds them) and an odd kernel stays odd."""
    half = max(n // 2, math.ceil(reach / step - 1e-9))
    offsets = np.arange(-half, half + 1)
    return offsets * step, offsets % n


def _samples_near_field(height: float, step: tuple[float, float]) -> bool:
    """Whether `layer_transfer` computes the cell's field at the grid's offsets (`_sampled`):
    more aliases matter than it sums in closed form."""
    mx, my = _alias_orders(height, step[0]), _alias_orders(height, step[1])
    return (2 * mx + 1) * (2 * my + 1) > _MAX_ALIAS_TERMS


def _check_sampled_size(m: MapData, shape: tuple[int, int], step: tuple[float, float]) -> None:
    """InputError when `_sampled`'s offsets on a grid of `shape`, which reach a number of the
    larger step along both axes, are more points than the inversion handles: pixels far from
    square."""
    reach = _NEAR_REACH_LIFTS * _LIFT_STEPS * max(step)
    points = math.prod(2 * max(n // 2, math.ceil(reach / d)) + 1
                       for n, d in zip(shape[::-1], step, strict=True))
    if points > _MAX_GRID_PIXELS:
        label = f"'{m.name}'" if m.name else "the map"
        raise InputError(
            f"{label} has pixels of {step[0] * 1e6:g} × {step[1] * 1e6:g} µm: the field of a "
            f"pixel's cell, sampled {_NEAR_REACH_LIFTS * _LIFT_STEPS} of the larger steps "
            f"around it at the smaller one, needs {points:,} points, more than the "
            f"{_MAX_GRID_PIXELS:,} the inversion handles; expected pixels closer to square "
            "(the map resampled to a common step)")


def _sampled(shape: tuple[int, int], step: tuple[float, float], direction: np.ndarray, *,
             height: float, thickness: float, sensor_size: tuple[float, float]) -> np.ndarray:
    """`layer_transfer` from the cell's field in closed form at every offset of the grid.

    The field B(h) is split by its p-th difference over a lift H (p = `_LIFT_ORDER`, H =
    `_LIFT_STEPS` pixels): for p = 2, B(h) = [B(h) − 2 B(h + H) + B(h + 2H)] + [2 B(h + H) −
    B(h + 2H)]. The first part decays as r^-(3+p), fast enough to be sampled at the grid's
    offsets, its periodic images folded in, and cut at _NEAR_REACH_LIFTS lifts or half the
    grid, whichever is further
    (`forward.cuboid_bz`, area-averaged, to 1e-7 of its peak); the second is smooth, the
    closed form T(k) at heights where no alias is left (e^{-2π H/step}). So the sum is the
    whole periodic transfer, its k = 0 term and symmetries kept, at any height.
    """
    from smm_daq.analysis.forward import cuboid_bz

    ny, nx = shape
    dx, dy = step
    lift = _LIFT_STEPS * max(dx, dy)
    ox, ix = _folded_offsets(nx, dx, _NEAR_REACH_LIFTS * lift)
    oy, iy = _folded_offsets(ny, dy, _NEAR_REACH_LIFTS * lift)
    px, py = np.meshgrid(ox, oy)
    cell = np.array([[0.0, 0.0, -thickness / 2, dx, dy, thickness]])
    moment = np.asarray(direction, dtype=float).reshape(1, 3)

    def field(z: float) -> np.ndarray:
        sensors = np.column_stack([px.ravel(), py.ravel(), np.full(px.size, z)])
        return cuboid_bz(sensors, cell, moment, sensor_size=sensor_size).reshape(px.shape)

    # B(h) = Σ_j w_j B(h + j H) + Σ_{j>0} (−w_j) B(h + j H), w_j = (−1)^j C(p, j)
    weights = [(-1) ** j * math.comb(_LIFT_ORDER, j) for j in range(_LIFT_ORDER + 1)]
    near = np.zeros((ny, nx))
    np.add.at(near, (iy[:, None], ix[None, :]),
              sum(w * field(height + j * lift) for j, w in enumerate(weights)))
    smooth = sum(-w * _aliased(shape, step, direction, height=height + j * lift,
                               thickness=thickness, sensor_size=sensor_size)
                 for j, w in enumerate(weights) if j > 0)
    return np.fft.rfft2(near) + smooth


def penalty_spectrum(
    shape: tuple[int, int], step: tuple[float, float], length: float
) -> np.ndarray:
    """1 + (k ℓ)² on the rfft grid: the penalty ‖M‖² + ℓ² ‖∇M‖² in the Fourier domain."""
    ny, nx = shape
    kx = 2 * np.pi * np.fft.rfftfreq(nx, step[0])[None, :]
    ky = 2 * np.pi * np.fft.fftfreq(ny, step[1])[:, None]
    return 1.0 + (kx**2 + ky**2) * length**2


def _rfft_weights(nx: int) -> np.ndarray:
    """How many times each rfft column stands in the full spectrum (1 or 2)."""
    w = np.full(nx // 2 + 1, 2.0)
    w[0] = 1.0
    if nx % 2 == 0:
        w[-1] = 1.0
    return w[None, :]


def _choose_regularization(
    data: np.ndarray,
    t2: np.ndarray,
    pen: np.ndarray,
    noise: float | None,
    criterion: str,
) -> tuple[float, float]:
    """λ and σ on the periodic approximation of the map (its edges made periodic, Moisan):
    σ is the noise given for the discrepancy principle, GCV's own estimate for GCV.

    t2 = |T|² (scaled as λ is) on the rfft grid of `data`. Only wavenumbers the layer's field
    reaches are counted: k = 0 is the fitted offset's, and on the null line of an in-plane
    direction only the support constraint, which this approximation lacks, decides M.
    """
    nx = data.shape[1]
    periodic, _ = periodic_smooth(data - data.mean())
    counts = np.broadcast_to(_rfft_weights(nx), t2.shape)
    resolved = t2 > 1e-12 * t2.max()
    power = (np.abs(sfft.rfft2(periodic, workers=_WORKERS)) ** 2 * counts)[resolved] / data.size
    t2, counts, pen = t2[resolved], counts[resolved], pen[resolved]
    modes = counts.sum()

    def residual(lam: float) -> float:
        """Mean square residual per resolved mode (σ² per mode for white noise)."""
        return float(np.sum((lam * pen / (t2 + lam * pen)) ** 2 * power)) / modes

    def free(lam: float) -> float:
        """The fraction of the resolved modes left to the residual, tr(I - H) / modes."""
        return float(np.sum(counts * lam * pen / (t2 + lam * pen))) / modes

    if criterion == "discrepancy":
        assert noise is not None
        target = noise**2
        lo, hi = _LOG_LAMBDA_RANGE
        if residual(10**lo) >= target:
            return 10**lo, noise
        if residual(10**hi) <= target:
            return 10**hi, noise
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if residual(10**mid) < target else (lo, mid)
        return 10 ** (0.5 * (lo + hi)), noise

    def gcv(log_lam: float) -> float:
        lam = 10**log_lam
        return residual(lam) / free(lam) ** 2

    grid = np.linspace(*_LOG_LAMBDA_RANGE, 57)
    best = grid[int(np.argmin([gcv(g) for g in grid]))]
    lam = 10 ** float(
        minimize_scalar(gcv, bounds=(best - 0.25, best + 0.25), method="bounded").x
    )
    return lam, float(np.sqrt(residual(lam) / free(lam)))


def _check_gcv_balance(m: MapData, lam: float, sigma: float, length: float, *,
                       noise_given: bool) -> None:
    """Refuse a GCV that fell to the floor of its search on a map that shows noise (`sigma`:
    GCV's own estimate, whether or not a noise was given beside it).

    There GCV found no balance between fit and smoothness (with a short correlation length,
    the modes the sensor's area nearly cancels make its curve fall on towards λ = 0): its σ
    then lies far below the noise the map shows, and M would fit that noise, tens of times
    the true values, with an SD that says nothing of it. A noiseless map may take the floor:
    its single-map noise floor then reads the field's bends at the pixel scale, not noise.
    """
    if np.log10(lam) > _LOG_LAMBDA_RANGE[0] + _GCV_FLOOR_DECADES:
        return
    floor = white_noise_floor(m.bz)
    if not floor > _GCV_NOISE_RATIO * sigma or bends_at_pixel_scale(m.bz):
        return  # noise that small, or a floor that reads the field's bends (a noiseless map)
    label = f"'{m.name}'" if m.name else "the map"
    raise InputError(
        f"{label}: λ by gcv fell to the lower end of its search, so the layer would be fitted "
        f"to the map's noise (σ {sigma / 1e-9:.3g} nT by gcv, where the map shows "
        f"{floor / 1e-9:.3g} nT of noise; correlation length {length / 1e-6:g} µm); expected "
        + ("the discrepancy principle for the noise given (--criterion discrepancy, the "
           "default with --noise-nT)" if noise_given else
           "the map's noise given (--noise-nT: the discrepancy principle)")
        + " or a longer correlation length (--correlation-length-um; the default is the "
        "sensor height)"
    )


def invert_magnetization(
    m: MapData,
    direction: np.ndarray,
    thickness: float,
    *,
    noise: float | None = None,
    criterion: str | None = None,
    regularization: float | None = None,
    support: np.ndarray | None = None,
    correlation_length: float | None = None,
    tolerance: float = 1e-5,
    max_iterations: int = 500,
) -> LayerInversion:
    """M (A/m) along `direction` of a layer of `thickness` (m) under the map.

    noise: σ of the map in T (for the discrepancy principle and the SD); criterion:
    "discrepancy" (needs noise; the default when it is given) or "gcv" (the default otherwise);
    regularization: a fixed λ in (T m / A)² instead of a criterion (λ = σ² / s², s the prior SD of
    M in A/m, is the Bayesian reading); support: boolean (ny, nx), True where the layer may be
    magnetized (default: the whole map); correlation_length ℓ (m) of the penalty
    ‖M‖² + ℓ² ‖∇M‖² (default: the sensor height, the scale the map resolves).
    """
    step = require_regular(m)
    height, sensor = _check_geometry(m, thickness)
    u = np.asarray(direction, dtype=float).reshape(-1)
    if u.size != 3 or not np.all(np.isfinite(u)) or np.linalg.norm(u) == 0:
        raise InputError(f"magnetization direction is {direction!r}; expected a non-zero 3-vector")
    u = u / np.linalg.norm(u)
    if criterion is None:
        criterion = "discrepancy" if noise is not None else "gcv"
    if criterion not in CRITERIA:
        raise InputError(f"criterion is {criterion!r}; expected one of {', '.join(CRITERIA)}")
    if criterion == "discrepancy" and noise is None:
        raise InputError("the discrepancy principle needs the map's noise; give it or use gcv")
    if noise is not None and not (np.isfinite(noise) and noise > 0):
        raise InputError(f"noise is {noise!r} T; expected a number > 0")
    measured = np.isfinite(m.bz)
    if measured.sum() < 16:
        raise InputError(f"'{m.name}' has only {int(measured.sum())} measured pixels")
    if support is None:
        support = np.ones(m.shape, bool)
    support = np.asarray(support, dtype=bool)
    if support.shape != m.shape:
        raise InputError(f"support mask has shape {support.shape}; expected {m.shape}")
    if not support.any():
        raise InputError("the support mask is empty; expected some pixels where M may be")
    geometry = {"height": height, "thickness": thickness, "sensor_size": sensor}
    length = height if correlation_length is None else float(correlation_length)
    if not (np.isfinite(length) and length >= 0):
        raise InputError(f"correlation length is {correlation_length!r} m; expected ≥ 0")

    if regularization is not None and not (np.isfinite(regularization) and regularization > 0):
        raise InputError(f"regularization is {regularization!r}; expected a number > 0")

    # the solution grid: the map padded so the periodic FFT convolution does not wrap around
    ny, nx = m.shape
    pads = [float(np.ceil(_PAD_HEIGHTS * (height + thickness) / d + w / d)) + 4
            for d, w in zip(step, sensor, strict=True)]  # floats: 1e296 at a 1e-300 m step
    _check_grid(m, (ny + 2 * pads[1], nx + 2 * pads[0]), height, thickness)
    pad_x, pad_y = int(pads[0]), int(pads[1])
    big = (sfft.next_fast_len(ny + 2 * pad_y, real=True),
           sfft.next_fast_len(nx + 2 * pad_x, real=True))
    _check_grid(m, big, height, thickness)
    if _samples_near_field(height, step):
        _check_sampled_size(m, big, step)
    cut = (slice(pad_y, pad_y + ny), slice(pad_x, pad_x + nx))
    transfer = layer_transfer(big, step, u, **geometry)
    scale = float(np.abs(transfer).max())
    transfer = transfer / scale  # A in units of `scale`: |T| ≤ 1, λ dimensionless
    if regularization is None:
        t2 = np.abs(layer_transfer(m.shape, step, u, **geometry) / scale) ** 2
        lam, sigma = _choose_regularization(
            fill_nan(m.bz), t2, penalty_spectrum(m.shape, step, length), noise, criterion
        )
        if criterion == "gcv":
            _check_gcv_balance(m, lam, sigma, length, noise_given=noise is not None)
            sigma = sigma if noise is None else noise
    else:
        lam, criterion = float(regularization) / scale**2, "given"
        sigma = noise if noise is not None else float("nan")
    t_conj = np.conj(transfer)
    weight = np.zeros(big)
    weight[cut] = measured
    in_support = np.zeros(big, bool)
    in_support[cut] = support
    n_data = float(measured.sum())
    data = np.zeros(big)
    data[cut] = np.where(measured, m.bz, 0.0) / scale
    workers = _WORKERS

    def forward(x: np.ndarray) -> np.ndarray:
        return sfft.irfft2(sfft.rfft2(x, workers=workers) * transfer, s=big, workers=workers)

    def adjoint(r: np.ndarray) -> np.ndarray:
        return sfft.irfft2(sfft.rfft2(r, workers=workers) * t_conj, s=big, workers=workers)

    # unknowns: M on the support (in `big`, zero elsewhere) and the offset c
    pen = lam * penalty_spectrum(big, step, length)

    def normal(x: np.ndarray, c: float) -> tuple[np.ndarray, float]:
        x_hat = sfft.rfft2(x, workers=workers)
        r = weight * (sfft.irfft2(x_hat * transfer, s=big, workers=workers) + c)
        out = sfft.irfft2(
            sfft.rfft2(r, workers=workers) * t_conj + pen * x_hat, s=big, workers=workers
        )
        return np.where(in_support, out, 0.0), float(r.sum())

    precond_filter = 1.0 / (np.abs(transfer) ** 2 * (n_data / (ny * nx)) + pen)

    def precondition(x: np.ndarray, c: float) -> tuple[np.ndarray, float]:
        px = sfft.irfft2(sfft.rfft2(x, workers=workers) * precond_filter, s=big, workers=workers)
        return np.where(in_support, px, 0.0), c / n_data

    b_x = np.where(in_support, adjoint(weight * data), 0.0)
    b_c = float((weight * data).sum())
    x = np.zeros(big)
    c = 0.0
    r_x, r_c = b_x, b_c
    z_x, z_c = precondition(r_x, r_c)
    p_x, p_c = z_x, z_c
    rz = float(np.vdot(r_x, z_x)) + r_c * z_c
    b_norm = np.sqrt(float(np.vdot(b_x, b_x)) + b_c**2) or 1.0
    iterations = 0
    converged = rz == 0.0  # a map of zeros: M = 0 and no offset, nothing to iterate on
    while not converged and iterations < max_iterations:
        iterations += 1
        q_x, q_c = normal(p_x, p_c)
        alpha = rz / (float(np.vdot(p_x, q_x)) + p_c * q_c)
        x += alpha * p_x
        c += alpha * p_c
        r_x -= alpha * q_x
        r_c -= alpha * q_c
        if np.sqrt(float(np.vdot(r_x, r_x)) + r_c**2) < tolerance * b_norm:
            converged = True
            break
        z_x, z_c = precondition(r_x, r_c)
        rz_new = float(np.vdot(r_x, z_x)) + r_c * z_c
        p_x = z_x + (rz_new / rz) * p_x
        p_c = z_c + (rz_new / rz) * p_c
        rz = rz_new

    predicted = (forward(x)[cut] + c) * scale
    resid = (m.bz - predicted)[measured]
    sd = _posterior_sd(transfer, weight, pen, sigma / scale, big, cut, workers)
    values = np.where(support, x[cut], np.nan)
    return LayerInversion(
        values=values,
        sd=np.where(support, sd, np.nan),
        predicted=m.with_bz(predicted, title=f"model of {m.name}".strip(), sources=(m.name,)),
        offset=c * scale,
        direction=u,
        thickness=float(thickness),
        regularization=lam * scale**2,
        criterion=criterion,
        noise=float(sigma),
        residual_rms=float(np.sqrt(np.mean(resid**2))),
        iterations=iterations,
        converged=converged,
        unit="A/m",
        correlation_length=length,
    )


def _posterior_sd(
    transfer: np.ndarray,
    weight: np.ndarray,
    pen: np.ndarray,
    sigma: float,
    big: tuple[int, int],
    cut: tuple[slice, slice],
    workers: int,
) -> np.ndarray:
    """σ √(mean_k 1/(c_j |T_k|² + λ)) with c_j the local coverage (module docstring)."""
    t2 = np.abs(transfer) ** 2
    footprint = sfft.irfft2(transfer, s=big, workers=workers) ** 2  # a pixel's field², centred at 0
    footprint /= footprint.sum()
    coverage = sfft.irfft2(
        sfft.rfft2(weight, workers=workers) * np.conj(sfft.rfft2(footprint, workers=workers)),
        s=big,
        workers=workers,
    )[cut]
    levels = np.linspace(0.0, 1.0, _COVERAGE_LEVELS)
    counts = _rfft_weights(big[1])
    total = counts.sum() * t2.shape[0]
    variance = [float(np.sum(counts / (c * t2 + pen))) / total for c in levels]
    return sigma * np.sqrt(np.interp(np.clip(coverage, 0.0, 1.0), levels, variance))


def invert_susceptibility(
    m: MapData,
    thickness: float,
    **options: object,
) -> LayerInversion:
    """χ (SI) of a layer of `thickness` (m) from an induced map, M = χ B_applied / µ0.

    The map must carry the applied field vector. Options as for `invert_magnetization`.
    """
    label = f"'{m.name}'" if m.name else "the map"
    field = m.applied_field
    if field is None or field.shape != (3,) or not np.all(np.isfinite(field)):
        raise InputError(f"{label} has no applied field vector; expected the field it was taken in")
    strength = float(np.linalg.norm(field))
    if strength == 0:
        raise InputError(f"{label} was taken in zero field; expected an induced map, taken "
                         "in a field (or its difference from a zero-field scan)")
    inv = invert_magnetization(m, field, thickness, **options)  # type: ignore[arg-type]
    h = strength / MU0
    return LayerInversion(
        values=inv.values / h,
        sd=inv.sd / h,
        predicted=inv.predicted,
        offset=inv.offset,
        direction=inv.direction,
        thickness=inv.thickness,
        regularization=inv.regularization,
        criterion=inv.criterion,
        noise=inv.noise,
        residual_rms=inv.residual_rms,
        iterations=inv.iterations,
        converged=inv.converged,
        unit="SI",
        correlation_length=inv.correlation_length,
    )
