"""Induced maps of one sample taken at several fields along one axis, combined into one map
whose inversion gives the susceptibility they all share.

Each induced map i, in the field b_i u (b_i signed, u the common unit vector), is
d_i = (b_i / µ0) A χ + c_i + noise: linear in the field. The least-squares combination
Σ b_i d_i / √(Σ b_i²) is then the map of the same χ in the field √(Σ b_i²) u, and the free
constant of the inversion takes Σ b_i c_i / √(Σ b_i²): χ is the slope of the induced field
against the applied one, fitted through zero over every map at once, rather than one map's
ratio. Regularized inversions shrink χ more where the signal is weaker, so χ from one map of
a weak field reads lower than from a strong one; the combination inverts the series at its
whole strength.

Its noise is each map's only where the maps share no scan. Each map is a difference of two
scans, in-field A_i − remanent R_i; with w_i = b_i / √(Σ b_i²) the combination is Σ_s c_s s
over the scans s, c_s the sum of w_i over the maps having s as their in-field scan less that
over those having it as their remanent one, so its noise is σ_scan √(Σ c_s²), and each map's
σ_scan √2 (scans of equal noise). Maps at +B and −B sharing one zero-field scan R cancel R's
noise (c_R = 0: 1/√2 of one map's); at +B and +2B they add it (c_R = −3/√5: 1.18 times one
map's) (`noise_ratio`).
"""

from __future__ import annotations

import numpy as np

from smm_daq.analysis.grids import require_same_grid
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

# fields along one axis: each within this angle of the first map's (or of its opposite)
_MAX_ANGLE_DEG = 0.5


def _uT(field: np.ndarray) -> str:
    return "(" + ", ".join(f"{v / 1e-6:.4g}" for v in field) + ") µT"


def _um(length: float | tuple[float, float] | None) -> str:
    if length is None:
        return "an unknown"
    return " × ".join(f"{v / 1e-6:g}" for v in np.atleast_1d(length))


def _same(a: float | tuple[float, float] | None, b: float | tuple[float, float] | None) -> bool:
    if a is None or b is None:
        return a is b
    return bool(np.allclose(a, b, rtol=1e-3, atol=0.0))


def series_axis(maps: list[MapData]) -> tuple[np.ndarray, np.ndarray]:
    """The series' unit vector u (the first map's field direction) and each map's signed
    field b_i along it (T), refusing a map without a field or off that axis."""
    fields = []
    for m in maps:
        f = m.applied_field
        if f is None or np.shape(f) != (3,) or not np.all(np.isfinite(f)) or not np.any(f):
            raise InputError(f"'{m.name}' has no applied field (zero field, or none stored); "
                             "expected induced maps, each taken in a field")
        fields.append(np.asarray(f, dtype=float))
    u = fields[0] / np.linalg.norm(fields[0])
    signed = np.array([float(f @ u) for f in fields])
    for m, f, b in zip(maps, fields, signed, strict=True):
        off = np.linalg.norm(f - b * u) / np.linalg.norm(f)
        if off > np.sin(np.radians(_MAX_ANGLE_DEG)):
            raise InputError(
                f"'{m.name}' was taken in {_uT(f)}, off the axis of '{maps[0].name}' "
                f"({_uT(fields[0])}) by {np.degrees(np.arcsin(min(off, 1.0))):.3g}°; expected "
                f"induced maps in fields along one axis (either way along it, within "
                f"{_MAX_ANGLE_DEG:g}°)")
    return u, signed


def combine_field_series(maps: list[MapData], name: str) -> MapData:
    """The maps' least-squares combination: the induced map, on their common grid, of the
    field √(Σ b_i²) u (NaN where any map is). At least two maps."""
    if len(maps) < 2:
        raise InputError(f"{len(maps)} induced map given; expected two or more to combine")
    first = maps[0]
    for m in maps[1:]:
        require_same_grid(first, m)
        if not (_same(m.height, first.height) and _same(m.sensor_size, first.sensor_size)):
            raise InputError(
                f"'{m.name}' was scanned at {_um(m.height)} µm with a sensor of "
                f"{_um(m.sensor_size)} µm, '{first.name}' at {_um(first.height)} µm with "
                f"{_um(first.sensor_size)} µm; expected one height and sensor for the series")
    u, b = series_axis(maps)
    strength = float(np.sqrt(np.sum(b**2)))
    bz = sum(bi * m.bz for bi, m in zip(b, maps, strict=True)) / strength
    title = f"{len(maps)} induced maps at " + ", ".join(f"{bi / 1e-6:+.4g}" for bi in b) + (
        f" µT along ({', '.join(f'{v:.4g}' for v in u)}), combined")
    return maps[0].with_bz(bz, name=name, title=title, sources=tuple(m.name for m in maps),
                           applied_field=strength * u)


# one map's two scans as `noise_ratio` takes them: keys of its in-field and remanent scans
# (one key, one measurement), or None where they are not known (taken as its own two)
ScanPair = tuple[str, str] | None


def noise_ratio(fields: np.ndarray, pairs: list[ScanPair]) -> float:
    """The noise of `combine_field_series`'s combination of maps in signed fields `fields`
    (b_i along their axis, `series_axis`), made from the scans `pairs`, over one map's noise
    (module docstring): 1 where they share none."""
    weights = np.asarray(fields, dtype=float) / float(np.sqrt(np.sum(np.square(fields))))
    coefficients: dict[str, float] = {}
    for i, (w, pair) in enumerate(zip(weights, pairs, strict=True)):
        in_field, remanent = pair if pair is not None else (f"#{i}+", f"#{i}-")
        coefficients[in_field] = coefficients.get(in_field, 0.0) + w
        coefficients[remanent] = coefficients.get(remanent, 0.0) - w
    return float(np.sqrt(sum(c * c for c in coefficients.values()) / 2.0))

