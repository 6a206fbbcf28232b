"""Each inverted scan's fitted and residual maps with the sensor that measured it, the same for
a fresh result (`invert_map`, `invert_scans`) and one read back from a session file
(`result_read`): what the MMT tab shows scan by scan, each on its own grid, and what a
grain's own field is computed for (its height, area and a volume sensor's thickness)."""

from __future__ import annotations

from dataclasses import dataclass

from smm_daq.storage.mapdata import MapData


@dataclass(frozen=True)
class ScanFit:
    """One scan of an inversion: its entry name, fitted and residual Bz on its grid, the
    sensor plane's height (m) and the sensor's full size (w, l) or (w, l, thickness) in m."""

    name: str
    fitted: MapData
    residual: MapData
    height: float
    sensor_size: tuple[float, ...]


def fits_of(result: object) -> tuple[ScanFit, ...]:
    """The scans of `result`, in its order (the first the one its `fitted`/`residual` show):
    a saved result's `scan_fits`, a joint result's `fits` with each scan's sensor, else the
    one scan of `fitted`/`residual`."""
    saved = getattr(result, "scan_fits", None)
    if saved:
        return tuple(saved)
    fits = getattr(result, "fits", None)
    if fits:
        scans = result.scans  # type: ignore[attr-defined]
        sensors = getattr(result, "sensors", None) or [f.sensor_size or (0.0, 0.0)
                                                         for f, _ in fits]
        return tuple(ScanFit(name, fitted, residual, _height(fitted, result), tuple(size))
                     for name, (fitted, residual), size
                     in zip(scans, fits, sensors, strict=True))
    fitted, residual = result.fitted, result.residual  # type: ignore[attr-defined]
    name = fitted.sources[0] if fitted.sources else fitted.name
    return (ScanFit(name, fitted, residual, _height(fitted, result),
                    tuple(fitted.sensor_size or (0.0, 0.0))),)


def _height(fitted: MapData, result: object) -> float:
    return float(fitted.height if fitted.height is not None
                 else result.height)  # type: ignore[attr-defined]
