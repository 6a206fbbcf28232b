"""Values a saved MMT result holds twice, or by a formula from others it holds, checked to agree
as `result_read` reads them.

The writer (`result_file`) stores each from the same arrays, so a disagreement beyond
rounding is damage (a file edited by hand, or written by another program) and is refused with
an InputError naming the grain's label, the column, the dataset and both values:

* the table's SDs (`sd_mx_A_per_m` ...) are the square roots of the covariance blocks'
  diagonal, its `cov_xy_A2_per_m2` ... their off-diagonal entries (`check_covariance_columns`);
* a point model's or joint inversion's coefficients hold M (the table's mx, my, mz) and the
  higher-order columns, their covariance blocks hold `results/covariance` (the first 3 × 3)
  and the higher-order columns' SDs (`check_coefficients`);
* the SSR is seed 001's eq. 13 from the grain's volume, its centroid's z and the recorded
  height (`check_ssr`);
* a grain's higher orders are resolved where their p-value is below `higher_order.ALPHA`
  (`check_resolved`);
* the declination and inclination are M's (`check_directions`).

"Agree" means equal to a relative `AGREE` (1e-6, the covariance blocks' own rounding
allowance `result_values.ROUNDING`): of the value for SDs, coefficients and the SSR, of
sqrt(C_ii C_jj) for a covariance, of 1° (and across 0°/360°) for a direction; +inf agrees with
+inf (an unresolved grain's).

Not checked here, by choice: the uncertainty ratio (eq. 12 needs an iterative quantile per
grain, which would slow the reading of a large result several-fold), the directions' SDs (a
linearisation, NaN where it has 0/0), and the χ² and its p-value (its degrees of freedom drop
where a covariance is singular to working precision, so a p-value does not follow from the χ²
alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from smm_daq.analysis.mmt.models.multipole import coefficient_column
from smm_daq.analysis.mmt.result_values import more_such
from smm_daq.analysis.mmt.solver.higher_order import ALPHA
from smm_daq.errors import InputError

AGREE = 1e-6  # relative: what two copies of one float64 value may differ by
UM = 1e-6
AXES = "xyz"


def _agree(a: np.ndarray, b: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Where a and b are the same value to rounding (relative `AGREE` of `scale`)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (a == b) | (np.abs(a - b) <= AGREE * scale)


def _refuse(same: np.ndarray, labels: np.ndarray, column: str, values: np.ndarray,
            other: str, others: np.ndarray, where: str) -> None:
    """InputError naming the first grain where `values` (table column `column`) and `others`
    (what `other` says it holds) do not agree, unless they agree throughout."""
    if np.all(same):
        return
    first = int(np.argmax(~same))
    raise InputError(
        f"'{column}' holds {float(values[first])!r} for grain {int(labels[first])}, but "
        f"{other} gives {float(others[first])!r}{more_such(int((~same).sum()), 'grain')}; "
        f"expected the same value to rounding (relative {AGREE:g})", source=where)


def check_covariance_columns(table: dict[str, np.ndarray], covariance: np.ndarray, name: str,
                             where: str) -> None:
    """The table's sd_m* and cov_* columns (where it has them) against the (G, 3, 3) blocks
    of dataset `name` (`results/covariance`): SD = sqrt(C_ii), cov_ij = C_ij."""
    labels = table["grain"]
    diagonal = np.einsum("gii->gi", covariance)
    with np.errstate(invalid="ignore"):
        root = np.sqrt(diagonal)
    for i, a in enumerate(AXES):
        column = f"sd_m{a}_A_per_m"
        if column in table:
            _refuse(_agree(table[column], root[:, i], root[:, i]), labels, column,
                    table[column], f"sqrt of '{name}'[{i}, {i}]", root[:, i], where)
    for i, j in ((0, 1), (0, 2), (1, 2)):
        column = f"cov_{AXES[i]}{AXES[j]}_A2_per_m2"
        if column in table:
            c = covariance[:, i, j]
            _refuse(_agree(table[column], c, root[:, i] * root[:, j]), labels, column,
                    table[column], f"'{name}'[{i}, {j}]", c, where)


def check_coefficients(table: dict[str, np.ndarray], coefficients: np.ndarray,
                       coefficient_covariance: np.ndarray, covariance: np.ndarray,
                       where: str) -> None:
    """A point model's coefficients (G, k) and their covariance blocks (G, k, k) against the
    table's columns (M and the higher orders, their SDs) and M's own blocks `covariance`."""
    labels = table["grain"]
    for j in range(coefficients.shape[1]):
        column = f"m{AXES[j]}_A_per_m" if j < 3 else coefficient_column(j)
        if column in table:
            c = coefficients[:, j]
            _refuse(_agree(table[column], c, np.maximum(np.abs(c), np.abs(table[column]))),
                    labels, column, table[column], f"'coefficients'[:, {j}]", c, where)
    diagonal = np.einsum("gii->gi", coefficient_covariance)
    with np.errstate(invalid="ignore"):
        root = np.sqrt(diagonal)
    for j in range(3, coefficients.shape[1]):
        column = f"sd_{coefficient_column(j)}"
        if column in table:
            _refuse(_agree(table[column], root[:, j], root[:, j]), labels, column,
                    table[column], f"sqrt of 'coefficient_covariance'[{j}, {j}]", root[:, j],
                    where)
    dipole = coefficient_covariance[:, :3, :3]
    bound = root[:, :3, None] * root[:, None, :3]
    same = _agree(covariance, dipole, bound).reshape(len(labels), -1)
    if not np.all(same):
        g = int(np.argmax(~same.all(axis=1)))
        i, j = divmod(int(np.argmax(~same[g])), 3)
        raise InputError(
            f"'covariance'[{i}, {j}] holds {float(covariance[g, i, j])!r} for grain "
            f"{int(labels[g])}, but 'coefficient_covariance'[{i}, {j}] "
            f"{float(dipole[g, i, j])!r}{more_such(int((~same.all(axis=1)).sum()), 'grain')}; "
            f"expected the same value to rounding (relative {AGREE:g}): M's "
            "covariance is the first 3 × 3 of the coefficients'", source=where)


def check_ssr(table: dict[str, np.ndarray], height: float, where: str) -> None:
    """The table's `ssr_per_um` (where it has one) against seed 001's eq. 13, V/(R³d): V the
    grain's `volume_um3`, R = height − z the distance from its centroid to the sensor plane
    (µm; the recorded height, of a joint inversion the lowest scan's), d = (6V/π)^(1/3)."""
    if "ssr_per_um" not in table:
        return
    volume = table["volume_um3"]
    distance = height / UM - table["z_um"]
    expected = volume / (distance**3 * np.cbrt(6.0 * volume / math.pi))
    _refuse(_agree(table["ssr_per_um"], expected, np.abs(expected)), table["grain"],
            "ssr_per_um", table["ssr_per_um"],
            f"V/(R³d) from 'volume_um3', 'z_um' and the height {height!r} m",
            expected, where)


def check_resolved(table: dict[str, np.ndarray], where: str) -> None:
    """The table's `higher_order_resolved` (where it has one) is 1 exactly where
    `higher_order_p` < ALPHA, and its p-value is NaN (not available) only where its χ² is:
    an unresolved grain's (whose p-value results written before were 1, the only other value
    a NaN χ² goes with)."""
    if "higher_order_resolved" not in table or "higher_order_p" not in table:
        return
    p, resolved = table["higher_order_p"], table["higher_order_resolved"]
    chi2 = table.get("higher_order_chi2")
    if chi2 is not None:
        _refuse_grains(
            np.isnan(p) & ~np.isnan(chi2),
            lambda i: f"'higher_order_p' holds nan for grain {int(table['grain'][i])}, whose "
                      f"'higher_order_chi2' is {float(chi2[i])!r}",
            "the p-value of that χ², from 0 to 1 (nan only where χ² is nan, an unresolved "
            "grain)", where)
        _refuse_grains(
            np.isnan(chi2) & ~np.isnan(p) & (p != 1),
            lambda i: f"'higher_order_p' holds {float(p[i])!r} for grain {int(table['grain'][i])}, "
                      "whose 'higher_order_chi2' is nan (an unresolved grain, not tested)",
            "nan there (1 in results written before layout version 5)", where)
    _refuse_grains(
        resolved != (p < ALPHA),  # NaN: not resolved
        lambda i: f"'higher_order_resolved' holds {float(resolved[i])!r} for grain "
                  f"{int(table['grain'][i])}, whose 'higher_order_p' is {float(p[i])!r}",
        f"1 where the p-value is below {ALPHA:g}, else 0", where)


def _refuse_grains(wrong: np.ndarray, said: Callable[[int], str], expected: str,
                   where: str) -> None:
    """InputError saying `said(i)` of the first grain i where `wrong`, how many more are, and
    `expected`, unless none is wrong."""
    if np.any(wrong):
        first = int(np.argmax(wrong))
        raise InputError(f"{said(first)}{more_such(int(wrong.sum()), 'grain')}; expected "
                         f"{expected}", source=where)


def check_directions(table: dict[str, np.ndarray], where: str) -> None:
    """The table's `declination_deg` and `inclination_deg` (where it has them) against M's:
    atan2(mx, my) mod 360° (clockwise from +y) and atan2(-mz, |(mx, my)|)."""
    m = [table[f"m{a}_A_per_m"] for a in AXES]
    expected = {"declination_deg": np.degrees(np.arctan2(m[0], m[1])) % 360.0,
                "inclination_deg": np.degrees(np.arctan2(-m[2], np.hypot(m[0], m[1])))}
    for column, angle in expected.items():
        if column in table:
            apart = np.abs(table[column] - angle)
            apart = np.minimum(apart, 360.0 - apart)  # 360° is 0°
            _refuse(_agree(apart, np.zeros_like(apart), np.ones_like(apart)), table["grain"],
                    column, table[column], "M ('mx_A_per_m', 'my_A_per_m', 'mz_A_per_m')",
                    angle, where)
