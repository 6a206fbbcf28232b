"""The values a saved MMT result entry can hold, checked as `result_read` reads them.

`result_read` knows where each value lies in an entry (every layout version); this module knows
which values a result can hold there and refuses any other with an InputError naming the
dataset (or table column), the value and what was expected. What a result holds is what its
writer (`result_file`) stores of what the solvers make:

* the per-grain table: one row a grain, the centroids and volumes finite (volumes > 0); the
  fitted values, SSR, depth, directions and p-values finite; an unresolved grain's SDs,
  covariances and uncertainty ratio +inf, its direction SDs and higher-order χ² NaN; never
  -inf; each in the range its definition gives (SDs, moments, ratios and χ² >= 0, p-values
  in [0, 1], resolved 0 or 1, declinations in [0°, 360°], inclinations in [-90°, 90°], the
  depth -z), the grain named (`check_table`, `column_holds`);
* per-grain covariance blocks (of M, or of a point model's coefficients): the diagonal blocks
  of W Wᵀ, so symmetric (to rounding) with variances >= 0 and correlations within ±1, or +inf
  throughout an unresolved grain's block, the solvers' mark (`read_covariances`);
* cond(Q) >= 1 or +inf (`read_condition_number`; NaN only where none was recorded); the
  sensors fitted a whole number >= 1 (`read_sensor_count`); lengths
  finite and >= 0; a noise σ >= 0 or NaN (none estimated); Bz maps NaN where not fitted, else
  below MAX_FIELD_T, and the first scan's maps under `scans/` the same as the entry's own
  (`check_same_map`); the damping finite and >= 0; a point model's coefficients finite, as
  many per grain as its model has.

A value that fails is damage (a file edited, or written by another program), never read as if
it were a result's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

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
    "ssr_per_um", "uncertainty_ratio_pct", "declination_deg", "sd_declination_deg",
    "inclination_deg", "sd_inclination_deg", "cov_xy_A2_per_m2", "cov_xz_A2_per_m2",
    "cov_yz_A2_per_m2",
    "x_um", "y_um", "z_um",
)
# CSV headers that differ from the table's column names. The declination's says its convention:
# CSVs written before it was clockwise from north headed the counter-clockwise-from-+x angle
# `declination_deg` too, with nothing in the file to tell the two apart; a new header (not a
# comment line, which csv.DictReader, numpy.genfromtxt(names=True) and pandas.read_csv would
# take for the header) makes an old file's column read by its old name and fails a script
# that reads today's by the old one, instead of it reading an angle of the other convention.
# Its SD (the same in both conventions) keeps the `sd_` + name pairing of every other column.
CSV_HEADERS = {"declination_deg": "declination_cw_from_north_deg",
               "sd_declination_deg": "sd_declination_cw_from_north_deg"}
# the entry's direction columns say their conventions too, to whoever opens the file
DIRECTION_NAMES = {
    "declination_deg": "declination, clockwise from north (+y) towards east (+x)",
    "inclination_deg": "inclination, positive downward (-z)",
}
# ... and so do its columns whose names alone say too little (an abbreviation, a reference)
COLUMN_NAMES = {
    **DIRECTION_NAMES,
    "ssr_per_um": "signal strength ratio V/(R^3 d) (seed 001 eq. 13): V the grain's volume, R "
                  "its centre's distance to the sensor plane, d the diameter of a sphere of "
                  "volume V",
    "uncertainty_ratio_pct": "uncertainty ratio: the radius of the 95 % confidence sphere of "
                             "M over |M| (seed 001 eq. 12)",
    "moment_Am2": "magnetic moment |M| V",
    "depth_um": "depth of the grain's centre below the sample top",
    "x_um": "x of the grain's centre (volume centroid)",
    "y_um": "y of the grain's centre (volume centroid)",
    "z_um": "z of the grain's centre (volume centroid; the sample top at 0, up positive)",
    **{f"cov_{a}{b}_A2_per_m2": f"covariance of m{a} and m{b}" for a, b in ("xy", "xz", "yz")},
}
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
    labels = table["grain"]
    for k in NEEDED[4:]:  # the grains are rebuilt from their centroids and volumes
        check_finite(table[k], k, where, positive=k == "volume_um3", labels=labels)
    for k, values in table.items():
        check_column(values, k, where, labels)
    if "depth_um" in table:
        _check_depth(table["depth_um"], table["z_um"], where, labels)


@dataclass(frozen=True)
class Holds:
    """What a table column holds besides finite values (`unresolved`: "", "inf", "nan" or
    "nan or inf", an unresolved grain's), and the range of its finite values (whole numbers only if
    `whole`), as `expected` says."""

    unresolved: str = ""
    low: float = -math.inf
    high: float = math.inf
    expected: str = "finite values"
    whole: bool = False


def column_holds(name: str) -> Holds | None:
    """What column `name` holds, as `MMTResult.table` and `MultipoleResult.table` write it;
    None for a name no result has (not judged). An SD is a square root of a variance (>= 0),
    +inf an unresolved grain's, NaN where the direction's linearisation has 0·inf or 0/0; the
    uncertainty ratio (eq. 12) a radius over |M| in % (>= 0, +inf unresolved or for M = 0);
    χ² = hᵀC⁻¹h >= 0 (NaN unresolved); p = P(χ² >= ...) in [0, 1], NaN for an unresolved
    grain (1 in results written before: `check_resolved` takes both);
    resolved 0 or 1; the moment |M|V and the SSR V/(R³d) >= 0; the declination atan2 mod 360°
    (360 itself where a tiny negative rounds up), the inclination atan2(-mz, h) with h >= 0
    in [-90°, 90°]; the depth is -z (`check_table`)."""
    if name.startswith("sd_"):
        return Holds("nan or inf", 0.0, expected="standard deviations >= 0")
    rules = {
        "higher_order_chi2": Holds("nan or inf", 0.0, expected="χ² values >= 0"),
        "uncertainty_ratio_pct": Holds("inf", 0.0, expected="ratios >= 0 %"),
        "moment_Am2": Holds(low=0.0, expected="moments |M|V >= 0"),
        "ssr_per_um": Holds(low=0.0, expected="signal strength ratios >= 0"),
        "higher_order_p": Holds("nan", 0.0, 1.0, expected="p-values from 0 to 1"),
        "higher_order_resolved": Holds(low=0.0, high=1.0, whole=True,
                                       expected="0 or 1 (whether the higher orders are "
                                                "resolved)"),
        "declination_deg": Holds(low=0.0, high=360.0, expected="declinations from 0 to 360°"),
        "inclination_deg": Holds(low=-90.0, high=90.0,
                                 expected="inclinations from -90 to 90°"),
    }
    if name in rules:
        return rules[name]
    if name.startswith("cov_"):
        return Holds("inf")
    return Holds() if name in known_columns() else None


def check_column(values: np.ndarray, name: str, where: str,
                 labels: np.ndarray | None = None) -> None:
    """InputError for a value column `name` of the table cannot hold (`column_holds`), naming
    the first and its grain (of `labels`, the table's). No column holds -inf; a column of a
    name no result has is not judged."""
    holds = column_holds(name)
    if holds is None:
        return
    allowed = {"": np.zeros(values.shape, bool), "inf": values == np.inf, "nan": np.isnan(values),
               "nan or inf": np.isnan(values) | (values == np.inf)}[holds.unresolved]
    finite = np.isfinite(values)
    unresolved = f" or {holds.unresolved} (an unresolved grain)" if holds.unresolved else ""
    _refuse(~(finite | allowed), values, name, where, labels, f"finite values{unresolved}")
    with np.errstate(invalid="ignore"):
        bad = finite & ((values < holds.low) | (values > holds.high)
                        | ((values != np.round(values)) if holds.whole else False))
    _refuse(bad, values, name, where, labels, holds.expected)


def more_such(flagged: int, noun: str = "") -> str:
    """What a refusal naming the first of `flagged` values adds about the others: " (and 2 more
    such grains)", " (and 1 more such grain)"; nothing where that one is the only one."""
    rest = flagged - 1
    if rest < 1:
        return ""
    named = f" {noun}{'s' if rest > 1 else ''}" if noun else ""
    return f" (and {rest} more such{named})"


def _check_depth(depth: np.ndarray, z: np.ndarray, where: str, labels: np.ndarray) -> None:
    """The depth below the sample top is -z of the centroid (`MMTResult.table`), of either
    sign: a point grain may lie above the top, only below the sensor."""
    bad = ~(np.abs(depth + z) <= 1e-9 * np.abs(z))
    if np.any(bad):
        first = int(np.argmax(bad))
        raise InputError(f"'depth_um' holds {float(depth[first])!r} for grain "
                         f"{int(labels[first])}, whose centroid is at z_um = "
                         f"{float(z[first])!r}{more_such(int(bad.sum()), 'grain')}; "
                         "expected the depth below the sample top, -z_um", source=where)


def _refuse(bad: np.ndarray, values: np.ndarray, name: str, where: str,
            labels: np.ndarray | None, expected: str) -> None:
    """InputError naming the first of `values` flagged `bad` (and its grain, where `labels`
    are given) unless none is."""
    if not np.any(bad):
        return
    first = int(np.argmax(bad))
    grain, noun = (f" for grain {int(labels[first])}", "grain") if labels is not None \
        else ("", "")
    raise InputError(f"'{name}' holds {float(values[first])!r}{grain}"
                     f"{more_such(int(bad.sum()), noun)}; expected {expected}", source=where)


def check_finite(values: np.ndarray, name: str, where: str, *, positive: bool = False,
                 labels: np.ndarray | None = None) -> None:
    """InputError unless every value is finite (and > 0 if `positive`), naming the first (and
    its grain, of `labels`)."""
    bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
    _refuse(bad, values, name, where, labels, f"finite values{' > 0' if positive else ''}")


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
        raise InputError(f"'{name}' holds {float(values[bad][0])!r}"
                         f"{more_such(int(bad.sum()))}; expected finite covariances, "
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
            raise InputError(f"'{name}' holds {what} in grain {int(labels[first])}'s block"
                             f"{more_such(int(bad.sum()), 'grain')}; expected each grain's "
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


def check_same_map(bz: np.ndarray, name: str, other: np.ndarray, other_name: str,
                   where: str) -> None:
    """InputError unless maps `bz` (dataset `name`) and `other` hold the same values (NaN at
    the same pixels, the rest equal to 1e-9: the writer stores one array twice, so only units
    converted on reading may round), as `fitted/Bz` and `data/Bz` hold the first scan's
    `scans/<scan>/fitted_Bz` and `residual_Bz`: a difference is damage to one of them."""
    if bz.shape != other.shape:
        raise InputError(f"'{name}' has shape {bz.shape} and '{other_name}' {other.shape}; "
                         "expected the same map in both", source=where)
    with np.errstate(invalid="ignore"):
        same = (np.isnan(bz) & np.isnan(other)) | (np.abs(bz - other) <= 1e-9 * np.abs(other))
    if not np.all(same):
        at = np.unravel_index(int(np.argmax(~same)), bz.shape)
        raise InputError(f"'{name}' holds {float(bz[at]):g} T at pixel (row {at[0]}, column "
                         f"{at[1]}) and '{other_name}' {float(other[at]):g} T"
                         f"{more_such(int((~same).sum()), 'pixel')}; expected the same map "
                         "in both (the first scan's)", source=where)


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
