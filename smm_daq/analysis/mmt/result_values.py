"""The values a saved MMT result entry can hold, checked as `result_read` reads them.

`result_read` knows where each value lies in an entry (every layout version); this module knows
which values a result can hold there and refuses any other with an InputError naming the
dataset (or table column), the value and what was expected. What a result holds is what its
writer (`result_file`) stores of what the solvers make:

* the per-grain table: one row a grain, the centroids and volumes finite (volumes > 0); the
  fitted values, SSR, depth, directions and p-values finite; an unresolved grain's SDs,
  covariances and uncertainty ratio +inf, its direction SDs and higher-order χ² NaN; never
  -inf (`check_table`, `check_column`);
* per-grain covariance blocks (of M, or of a point model's coefficients): the diagonal blocks
  of W Wᵀ, so symmetric (to rounding) with variances >= 0 and correlations within ±1, or +inf
  throughout an unresolved grain's block, the solvers' mark (`read_covariances`);
* cond(Q) >= 1 or +inf (`read_condition_number`; NaN only where none was recorded); the
  sensors fitted a whole number >= 1 (`read_sensor_count`); lengths
  finite and >= 0; a noise σ >= 0 or NaN (none estimated); Bz maps NaN where not fitted, else
  below MAX_FIELD_T; the damping finite and >= 0; a point model's coefficients finite, as
  many per grain as its model has.

A value that fails is damage (a file edited, or written by another program), never read as if
it were a result's.
"""

from __future__ import annotations

import math

import h5py
import numpy as np

from smm_daq.analysis.mmt.models.multipole import coefficient_column
from smm_daq.errors import InputError
from smm_daq.storage.checks import MAX_FIELD_T, numeric, string

MODELS = ("cuboid", "dipole", "quadrupole", "octupole")
COEFFICIENTS = {"quadrupole": 8, "octupole": 15}  # per grain; 3 (M) for the others
# the table's columns in the order `MMTResult.table` makes them (the CSV's); a multipole
# model's coefficients, their SDs and the higher-order test follow (`known_columns`)
BASE_COLUMNS = (
    "grain", "mx_A_per_m", "my_A_per_m", "mz_A_per_m",
    "sd_mx_A_per_m", "sd_my_A_per_m", "sd_mz_A_per_m", "moment_Am2", "volume_um3", "depth_um",
    "ssr", "uncertainty_ratio_pct", "declination_deg", "sd_declination_deg", "inclination_deg",
    "sd_inclination_deg", "cov_xy_A2_per_m2", "cov_xz_A2_per_m2", "cov_yz_A2_per_m2",
    "x_um", "y_um", "z_um",
)
HIGHER_ORDER_COLUMNS = ("higher_order_chi2", "higher_order_p", "higher_order_resolved")
NEEDED = ("grain", "mx_A_per_m", "my_A_per_m", "mz_A_per_m", "volume_um3", "x_um", "y_um",
          "z_um")
# how far a covariance block may stray from symmetry, or a correlation beyond ±1, relative to
# sqrt(C_ii C_jj): W Wᵀ's rounding is about n·ε (1e-11 at the lab's 12,900 unknowns)
ROUNDING = 1e-6


def known_columns() -> list[str]:
    """The table's columns in the CSV's order: the base columns, each coefficient with its
    SD, the higher-order test."""
    known = list(BASE_COLUMNS)
    for j in range(3, 15):
        known += [coefficient_column(j), f"sd_{coefficient_column(j)}"]
    return known + list(HIGHER_ORDER_COLUMNS)


def check_table(table: dict[str, np.ndarray], where: str) -> None:
    """InputError unless `table` (columns by CSV name) holds the needed columns, one value per
    grain in each, at least one grain, and in each column values a result can hold there."""
    missing = [k for k in NEEDED if k not in table]
    if missing:
        raise InputError(f"the grain table has no column {', '.join(missing)}; expected an "
                         "MMT result's per-grain table", source=where)
    n = table["grain"].shape[0]
    if n == 0:
        raise InputError("the grain table holds no grain; expected at least one", source=where)
    odd = {k: v.shape[0] for k, v in table.items() if v.shape[0] != n}
    if odd:
        raise InputError(f"the grain table's column(s) {', '.join(odd)} hold "
                         f"{', '.join(str(v) for v in odd.values())} values; expected one "
                         f"per grain in each ({n}, as 'grain' holds)", source=where)
    for k in NEEDED[4:]:  # the grains are rebuilt from their centroids and volumes
        check_finite(table[k], k, where, positive=k == "volume_um3")
    for k, values in table.items():
        check_column(values, k, where)


def check_column(values: np.ndarray, name: str, where: str) -> None:
    """InputError for a value column `name` of the table cannot hold, naming the first. An
    unresolved grain's SDs and covariances are +inf (its variances are), its declination's
    and inclination's SDs NaN where the linearisation has 0·inf, its uncertainty ratio +inf
    (and a zero M's too), its higher-order χ² NaN (not tested); the fitted values, the SSR,
    depth, directions and p-values are finite in every result. No column holds -inf; a
    column of a name no result has is not judged."""
    if name.startswith("sd_") or name == "higher_order_chi2":
        allowed, what = np.isnan(values) | (values == np.inf), "NaN or inf"
    elif name == "uncertainty_ratio_pct" or name.startswith("cov_"):
        allowed, what = values == np.inf, "inf"
    elif name in known_columns():
        allowed, what = np.zeros(values.shape, bool), ""
    else:
        return
    bad = ~(np.isfinite(values) | allowed)
    if np.any(bad):
        raise InputError(f"'{name}' holds {float(values[bad][0])!r} (and "
                         f"{int(bad.sum()) - 1} more such); expected finite values"
                         f"{' or ' + what + ' (an unresolved grain)' if what else ''}",
                         source=where)


def check_finite(values: np.ndarray, name: str, where: str, *, positive: bool = False) -> None:
    """InputError unless every value is finite (and > 0 if `positive`), naming the first."""
    bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
    if np.any(bad):
        raise InputError(f"'{name}' holds {float(values[bad][0])!r} (and "
                         f"{int(bad.sum()) - 1} more such); expected finite values"
                         f"{' > 0' if positive else ''}",
                         source=where)


def read_covariances(g: h5py.Group, name: str, where: str, labels: np.ndarray, k: int
                     ) -> np.ndarray:
    """The grains' covariance matrices `name` (G, k, k), G the table's grains `labels`, in
    (A/m)² where one unit is recorded: each a covariance matrix (symmetric, variances >= 0,
    correlations within ±1, to rounding), or +inf throughout (an unresolved grain's)."""
    shape = (labels.size, k, k)
    values = numeric(g, name, where, ndim=len(shape))
    if values.shape != shape:
        raise InputError(f"'{name}' has shape {values.shape}; expected {shape}", source=where)
    node = g[name]
    if "units" in node.attrs:
        units = string(node.attrs["units"], f"{name}'s units", where)
        if units != "A2/m2":
            raise InputError(f"'{name}' has units {units!r}; expected A2/m2 (covariances of "
                             "magnetizations in A/m)", source=where)
    bad = ~(np.isfinite(values) | (values == np.inf))
    if np.any(bad):
        raise InputError(f"'{name}' holds {float(values[bad][0])!r} (and "
                         f"{int(bad.sum()) - 1} more such); expected finite covariances, "
                         "or inf (an unresolved grain)", source=where)
    _check_blocks(values, name, where, labels)
    return values


def _check_blocks(values: np.ndarray, name: str, where: str, labels: np.ndarray) -> None:
    """InputError naming the first grain whose block (finite or +inf, `read_covariances`) is
    not one a solver writes: +inf in only part of it, a negative variance, asymmetric or with
    a correlation beyond ±1."""
    infinite = np.isinf(values).reshape(values.shape[0], -1)
    finite = ~infinite.any(axis=1)
    blocks = values[finite]
    diagonal = np.einsum("gii->gi", blocks)
    root = np.sqrt(np.abs(diagonal))
    bound = root[:, :, None] * root[:, None, :]  # sqrt(C_ii C_jj)
    flagged = {k: np.zeros(values.shape[0], bool) for k in ("negative", "asymmetric", "beyond")}
    with np.errstate(over="ignore", invalid="ignore"):  # a difference beyond float: flagged
        flagged["negative"][finite] = np.any(diagonal < 0, axis=1)
        flagged["asymmetric"][finite] = np.any(
            ~(np.abs(blocks - blocks.transpose(0, 2, 1)) <= ROUNDING * bound), axis=(1, 2))
        flagged["beyond"][finite] = np.any(np.abs(blocks) > (1 + ROUNDING) * bound,
                                           axis=(1, 2))
    for bad, what in ((~finite & ~infinite.all(axis=1), "inf (not throughout)"),
                      (flagged["negative"], "a negative variance"),
                      (flagged["asymmetric"], "an asymmetry beyond rounding"),
                      (flagged["beyond"], "a correlation beyond ±1")):
        if np.any(bad):
            first = int(np.argmax(bad))
            raise InputError(f"'{name}' holds {what} in grain {int(labels[first])}'s block (and "
                             f"{int(bad.sum()) - 1} more such grains); expected each grain's "
                             "covariance matrix (symmetric, variances >= 0, correlations "
                             "within ±1), or inf throughout (an unresolved grain)",
                             source=where)


def read_condition_number(g: h5py.Group, where: str) -> float:
    """cond(Q) (dimensionless): >= 1 or inf; NaN where none was recorded."""
    name = "condition_number"
    if name not in g:
        return math.nan
    value = read_scalar(g, name, where)
    units = (string(g[name].attrs["units"], f"{name}'s units", where)
             if "units" in g[name].attrs else "1")
    if units not in ("1", ""):
        raise InputError(f"'{name}' has units {units!r}; expected 1 (a ratio)", source=where)
    if not value >= 1 - 1e-9:  # NaN too: every solver records one (inf where Q is singular)
        raise InputError(f"'{name}' is {value!r}; expected a condition number >= 1 or inf",
                         source=where)
    return value


def read_sensor_count(g: h5py.Group, where: str, default: int) -> int:
    """The number of sensors fitted (`n_sensors`): a whole number >= 1; `default` where none
    was recorded."""
    name = "n_sensors"
    if name not in g:
        return default
    value = read_scalar(g, name, where)
    if not (math.isfinite(value) and value >= 1 and value == round(value)):
        raise InputError(f"'{name}' is {value!r}; expected a whole number of sensors >= 1",
                         source=where)
    return int(value)


def read_scalar(g: h5py.Group, name: str, where: str, default: float | None = None) -> float:
    """Scalar dataset `name` as a float (`default` where it is absent, if given)."""
    if name not in g and default is not None:
        return default
    return float(numeric(g, name, where, ndim=0))


def read_length(g: h5py.Group, name: str, where: str, *, positive: bool = False) -> float:
    """A length (m, converted from its `units`): finite and >= 0 (> 0 if `positive`)."""
    value = float(numeric(g, name, where, ndim=0, si="m"))
    if not (math.isfinite(value) and (value > 0 if positive else value >= 0)):
        raise InputError(f"'{name}' is {value!r} m; expected a finite length "
                         f"{'> 0' if positive else '>= 0'}", source=where)
    return value


def read_sensor_size(g: h5py.Group, where: str) -> tuple[float, ...]:
    """A scan's sensor area `sensor_size` (w, l in m): two finite sizes >= 0."""
    size = tuple(float(v) for v in numeric(g, "sensor_size", where, length=2, si="m"))
    if not all(math.isfinite(v) and v >= 0 for v in size):
        raise InputError(f"'sensor_size' is {list(size)!r} m; expected two finite sizes "
                         ">= 0", source=where)
    return size


def read_sigma(g: h5py.Group, name: str, where: str) -> float:
    """A noise σ (T, converted from its `units`): >= 0, NaN where none could be estimated."""
    value = float(numeric(g, name, where, ndim=0, si="T"))
    if math.isinf(value) or value < 0:
        raise InputError(f"'{name}' is {value!r} T; expected a noise σ >= 0", source=where)
    return value


def read_field(g: h5py.Group, name: str, where: str) -> np.ndarray:
    """A 2-D map of Bz (T): NaN where not fitted, else below MAX_FIELD_T in magnitude."""
    bz = numeric(g, name, where, ndim=2, si="T")
    known = bz[~np.isnan(bz)]
    if known.size and not np.max(np.abs(known)) < MAX_FIELD_T:
        raise InputError(f"'{name}' holds {known[np.argmax(np.abs(known))]:g} T; expected "
                         f"fields below {MAX_FIELD_T:g} T in magnitude", source=where)
    return bz


def read_coefficients(g: h5py.Group, where: str, n: int, model: str) -> np.ndarray:
    """A point model's coefficients (n grains × 3, 8 or 15 as `model` has): finite."""
    coefficients = numeric(g, "coefficients", where, ndim=2)
    k = coefficients.shape[1]
    if coefficients.shape[0] != n or k not in (3, 8, 15):
        raise InputError(f"'coefficients' has shape {coefficients.shape}; expected "
                         f"({n}, 3, 8 or 15)", source=where)
    if k != COEFFICIENTS.get(model, 3):
        raise InputError(f"'coefficients' holds {k} per grain, which the model "
                         f"'{model}' ('results/model') has not; expected "
                         f"{COEFFICIENTS.get(model, 3)}", source=where)
    if not np.all(np.isfinite(coefficients)):
        raise InputError("'coefficients' holds values not finite; expected each "
                         "grain's fitted coefficients", source=where)
    return coefficients


def check_model(model: str, where: str) -> None:
    """InputError unless `model` (results/model) names a grain model."""
    if model not in MODELS:
        raise InputError(f"'results/model' is {model!r}; expected one of "
                         f"{', '.join(MODELS)}", source=where)


def check_damping(damping: float, where: str) -> None:
    """InputError unless the damping λ is finite and >= 0."""
    if not (math.isfinite(damping) and damping >= 0):
        raise InputError(f"'damping' is {damping!r}; expected a finite number >= 0",
                         source=where)


def check_masks(masks: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                where: str) -> None:
    """Each scan's mask of its maps' shape (`shapes`, where known)."""
    for scan, mask in masks.items():
        if scan in shapes and mask.shape != shapes[scan]:
            raise InputError(f"'mask' has shape {mask.shape}; expected the scan's map's "
                             f"{shapes[scan]}", source=f"{where}, scans/{scan}")
