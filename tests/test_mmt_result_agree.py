"""A saved MMT result's numbers that it holds twice, or that follow by formula from others it
holds, agree: on real results made by `smm-daq mmt invert` (cuboid grains, dipole points,
quadrupole points, a joint quadrupole inversion of two scans) the table's SDs and covariance
columns are the covariance blocks', a point model's coefficients and their covariance hold M,
its covariance and the higher orders' columns; the SSR (seed 001 eq. 13), the uncertainty ratio
(eq. 12), the directions with their SDs and the higher-order test are recomputed here from M,
its covariance and the stored geometry by other routes than the product's (Imhof's integral
for the 95 % sphere, a numerical Jacobian, a linear solve for χ²). The reader refuses a file
whose copies disagree beyond rounding, naming the grain, the column and both values, and
`smm-daq info`/`export` exit 2 on it, writing nothing."""

from __future__ import annotations

import csv
import math
import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from scipy import integrate, optimize
from scipy import stats as scipy_stats
from test_gui_mmt import write_cuboid_session
from test_mmt_cli_models import NPZ, imported

from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.arrays import NumpyArrays
from smm_daq.analysis.mmt.solver.device_qr import DeviceSolver, grain_blocks
from smm_daq.cli.main import main
from smm_daq.errors import InputError

UM = 1e-6
KINDS = ("cuboid", "dipole", "quadrupole", "joint")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Results made by the command line: kind -> (session file, result entry); each one's CSV
    is `csv_of(made, kind)`."""
    tmp = tmp_path_factory.mktemp("made")
    out: dict[str, tuple[Path, str]] = {}
    (tmp / "cuboid").mkdir()
    cuboid, grains = write_cuboid_session(tmp / "cuboid")
    assert main(["mmt", "invert", str(cuboid), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp / "cuboid.csv")]) == 0
    out["cuboid"] = (cuboid, "scan_mmt")
    (tmp / "points").mkdir()
    points = imported(tmp / "points", "a", "b")
    common = ["--grain-format", "mpe", "--grains", str(NPZ)]
    assert main(["mmt", "invert", str(points), "--entry", "a", *common, "--out",
                 str(tmp / "dipole.csv"), "--result-entry", "dipole"]) == 0
    out["dipole"] = (points, "dipole")
    assert main(["mmt", "invert", str(points), "--entry", "a", *common, "--model",
                 "quadrupole", "--out", str(tmp / "quadrupole.csv"),
                 "--result-entry", "quad"]) == 0
    out["quadrupole"] = (points, "quad")
    assert main(["mmt", "invert", str(points), "--entry", "a", "--entry", "b", *common,
                 "--model", "quadrupole", "--sigma-nT", "1", "--out", str(tmp / "joint.csv"),
                 "--result-entry", "joint"]) == 0
    out["joint"] = (points, "joint")
    return out


def csv_of(made: dict[str, tuple[Path, str]], kind: str) -> dict[str, np.ndarray]:
    """The columns of the CSV `mmt invert` wrote beside result `kind`."""
    path = made["cuboid"][0].parent.parent / f"{kind}.csv"
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return {k: np.array([float(r[k]) for r in rows]) for k in rows[0]}


def stored(path: Path, entry: str) -> dict[str, np.ndarray]:
    """The entry's table (datasets of `grains` by their stored names), covariances,
    coefficients and height, straight from the file (not through the reader)."""
    with h5py.File(path, "r") as f:
        g = f[entry]
        out = {k: np.asarray(v[()], dtype=float) for k, v in g["grains"].items()
               if isinstance(v, h5py.Dataset) and v.dtype.kind in "iuf"}
        for k in ("covariance", "coefficients", "coefficient_covariance"):
            if k in g["results"]:
                out[k] = np.asarray(g["results"][k][()], dtype=float)
        out["height"] = np.asarray(g["process/parameters/height"][()], dtype=float)
        out["model"] = np.asarray(g["results/model"].asstr()[()] if "model" in g["results"]
                                  else "cuboid")
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_the_writer_stores_sds_and_covariances_that_agree_with_the_blocks(
        made: dict[str, tuple[Path, str]], kind: str) -> None:
    """sd = sqrt(C_ii) and cov_ij = C_ij of `results/covariance`; a point model's coefficient
    covariance holds that block first and its diagonal gives the higher orders' SDs; its
    coefficients hold M and the higher-order columns; the blocks are exactly symmetric."""
    s = stored(*made[kind])
    c = s["covariance"]
    assert np.all(np.isfinite(c))
    np.testing.assert_array_equal(c, c.transpose(0, 2, 1))
    for i, a in enumerate("xyz"):
        np.testing.assert_allclose(s[f"m{a}_errors"], np.sqrt(c[:, i, i]), rtol=1e-12)
    for (i, j), name in (((0, 1), "cov_xy"), ((0, 2), "cov_xz"), ((1, 2), "cov_yz")):
        np.testing.assert_allclose(s[name], c[:, i, j], rtol=1e-12)
    table = csv_of(made, kind)  # 9 significant digits
    for i, a in enumerate("xyz"):
        np.testing.assert_allclose(table[f"sd_m{a}_A_per_m"], np.sqrt(c[:, i, i]), rtol=1e-8)
    for (i, j), name in (((0, 1), "xy"), ((0, 2), "xz"), ((1, 2), "yz")):
        np.testing.assert_allclose(table[f"cov_{name}_A2_per_m2"], c[:, i, j], rtol=1e-8)
    if kind == "cuboid":
        assert "coefficients" not in s
        return
    coefficients, full = s["coefficients"], s["coefficient_covariance"]
    k = {"dipole": 3, "quadrupole": 8, "joint": 8}[kind]
    assert coefficients.shape[1] == k and full.shape[1:] == (k, k)
    np.testing.assert_array_equal(full[:, :3, :3], c)
    np.testing.assert_array_equal(full, full.transpose(0, 2, 1))
    np.testing.assert_array_equal(coefficients[:, :3], np.c_[s["mx"], s["my"], s["mz"]])
    names = ("q20", "q21c", "q21s", "q22c", "q22s")
    for j, name in enumerate(names[:k - 3], start=3):
        np.testing.assert_array_equal(s[name], coefficients[:, j])
        np.testing.assert_allclose(s[f"{name}_errors"], np.sqrt(full[:, j, j]), rtol=1e-12)


def _sphere_radius_95(cov: np.ndarray) -> float:
    """The radius r with P(|X| <= r) = 0.95 for X ~ N(0, cov), by Imhof's (1961) integral for
    the distribution of Σ λ_k χ²₁ (λ the eigenvalues, here over the largest) and a root
    search: another route than the product's quadrature over directions. The integrand
    sin(A(u) - xu/2)/(u ρ(u)) is integrated to u = 1, and beyond as Fourier integrals (QUADPACK
    QAWF) of sin A/(uρ) and -cos A/(uρ), whose tails a truncation would miss."""
    lam = np.linalg.eigvalsh(cov)
    top = lam.max()
    lam = lam / top

    def half_angle(u: float) -> float:
        return 0.5 * float(np.sum(np.arctan(lam * u)))

    def rho(u: float) -> float:
        return float(np.prod((1 + (lam * u) ** 2) ** 0.25))

    def above(x: float) -> float:  # P(Σ λ_k χ²₁ > x)
        head = integrate.quad(lambda u: math.sin(half_angle(u) - 0.5 * x * u) / (u * rho(u)),
                              0, 1, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
        tail = (integrate.quad(lambda u: math.sin(half_angle(u)) / (u * rho(u)), 1, np.inf,
                               weight="cos", wvar=0.5 * x, epsabs=1e-14)[0]
                + integrate.quad(lambda u: -math.cos(half_angle(u)) / (u * rho(u)), 1,
                                 np.inf, weight="sin", wvar=0.5 * x, epsabs=1e-14)[0])
        return 0.5 + (head + tail) / math.pi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        # the quantile lies between chi-square(1)'s and chi-square(3)'s (λ_max = 1)
        x = optimize.brentq(lambda t: above(t) - 0.05, scipy_stats.chi2.ppf(0.95, 1) - 1e-9,
                            scipy_stats.chi2.ppf(0.95, 3) + 1e-9, xtol=1e-15)
    return math.sqrt(x * top)


def _angles(m: np.ndarray) -> np.ndarray:
    """(declination, inclination) in degrees: clockwise from +y (north) toward +x (east),
    positive downward."""
    dec = math.degrees(math.atan2(m[0], m[1])) % 360.0
    inc = math.degrees(math.asin(-m[2] / np.linalg.norm(m)))
    return np.array([dec, inc])


@pytest.mark.parametrize("kind", KINDS)
def test_ssr_uncertainty_ratio_directions_and_higher_orders_are_what_their_formulas_give(
        made: dict[str, tuple[Path, str]], kind: str) -> None:
    """Recomputed from M, its covariance and the stored geometry (V, z, the SSR's height):
    SSR = V/(R³d) (R = height - z, d = 2 (3V/4π)^(1/3)); the uncertainty ratio 100 r95/|M|;
    declination and inclination with SDs sqrt(J C Jᵀ), J by central differences; χ² = hᵀC⁻¹h
    of the higher orders, its p from scipy's chi-square with k - 3 degrees of freedom (σ
    given) or, σ from the residual of one scan, from F(k - 3, N - kG) of χ²/(k - 3) (the
    residual's degrees of freedom counted here: every grain resolved), and resolved exactly
    where p < 0.05."""
    s = stored(*made[kind])
    m = np.c_[s["mx"], s["my"], s["mz"]]
    cov = s["covariance"]
    volume, distance = s["volume"], float(s["height"]) / UM - s["z"]
    d = 2 * (3 * volume / (4 * math.pi)) ** (1 / 3)
    np.testing.assert_allclose(s["ssr"], volume / (distance**3 * d), rtol=1e-12)
    for g in range(m.shape[0]):
        ratio = 100 * _sphere_radius_95(cov[g]) / np.linalg.norm(m[g])
        assert s["uncertainty_ratio"][g] == pytest.approx(ratio, rel=1e-9)
        angles = _angles(m[g])
        np.testing.assert_allclose([s["declination"][g], s["inclination"][g]], angles,
                                   rtol=1e-12, atol=1e-9)
        step = 1e-6 * np.linalg.norm(m[g])
        jac = np.column_stack([(_angles(m[g] + e) - _angles(m[g] - e)) / (2 * step)
                               for e in np.eye(3) * step])
        jac[0] = (jac[0] + 180) % 360 - 180  # a declination step across 0°/360°
        sd = np.sqrt(np.diag(jac @ cov[g] @ jac.T))
        np.testing.assert_allclose([s["declination_errors"][g], s["inclination_errors"][g]],
                                   sd, rtol=1e-5)
    if kind in ("cuboid", "dipole"):
        assert "higher_order_p" not in s
        return
    h, full = s["coefficients"][:, 3:], s["coefficient_covariance"][:, 3:, 3:]
    chi2 = np.array([hg @ np.linalg.solve(cg, hg) for hg, cg in zip(h, full, strict=True)])
    q = h.shape[1]
    with h5py.File(made[kind][0], "r") as f:
        results = f[made[kind][1]]["results"]
        own = bool(results["sigma_from_residual"][()]) and kind != "joint"
        dof = int(results["n_sensors"][()]) - s["coefficients"].size
    assert np.all(np.isfinite(full))
    p = (scipy_stats.f.sf(chi2 / q, q, dof) if own else scipy_stats.chi2.sf(chi2, df=q))
    np.testing.assert_allclose(s["higher_order_chi2"], chi2, rtol=1e-7)
    np.testing.assert_allclose(s["higher_order_p"], p, rtol=1e-6, atol=1e-300)
    np.testing.assert_array_equal(s["higher_order_resolved"], (p < 0.05).astype(float))
    if kind == "joint":  # both outcomes are tested
        assert 0 < np.sum(s["higher_order_resolved"]) < len(p)


def _spoilt(made: dict[str, tuple[Path, str]], kind: str, tmp_path: Path, name: str,
            change) -> tuple[Path, str, int]:
    """A copy of result `kind` with dataset `name` of its entry changed at its second grain
    (`change` of the stored array and the entry, in place); the grain's label."""
    source, entry = made[kind]
    path = tmp_path / f"{kind}.h5"
    shutil.copy(source, path)
    with h5py.File(path, "a") as f:
        data = np.array(f[entry][name][()], dtype=float)
        change(data, f[entry])
        f[entry][name][...] = data
        label = int(f[entry]["grains/grain"][1])
    return path, entry, label


def _moved(name: str, by: float):
    """The second grain's value of dataset `name` moved by `by` of its scale: of itself, or
    for a covariance cov_ab of sqrt(var_a var_b), the scale of the reader's allowance."""
    def change(data: np.ndarray, g: h5py.Group) -> None:
        stem = name.split("/")[-1]
        scale = (math.sqrt(g[f"grains/m{stem[-2]}_errors"][1] * g[f"grains/m{stem[-1]}_errors"][1])
                 if stem.startswith("cov_") else abs(data[1]))
        data[1] += by * scale
    return change


CASES = [  # kind, dataset, column named, what the other value is called
    ("cuboid", "grains/mx_errors", "sd_mx_A_per_m", "sqrt of 'covariance'[0, 0]"),
    ("cuboid", "grains/cov_yz", "cov_yz_A2_per_m2", "'covariance'[1, 2]"),
    ("dipole", "grains/mz_errors", "sd_mz_A_per_m", "sqrt of 'covariance'[2, 2]"),
    ("quadrupole", "grains/q21s_errors", "sd_q21s_Am3",
     "sqrt of 'coefficient_covariance'[5, 5]"),
    ("quadrupole", "grains/q22c", "q22c_Am3", "'coefficients'[:, 6]"),
    ("joint", "grains/cov_xz", "cov_xz_A2_per_m2", "'covariance'[0, 2]"),
    ("joint", "grains/my", "my_A_per_m", "'coefficients'[:, 1]"),
    ("joint", "grains/ssr", "ssr_per_um", "V/(R³d)"),
    ("cuboid", "grains/ssr", "ssr_per_um", "V/(R³d)"),
]


@pytest.mark.parametrize(("kind", "name", "column", "other"), CASES)
def test_the_reader_refuses_copies_that_disagree_naming_grain_column_and_both_values(
        made: dict[str, tuple[Path, str]], tmp_path: Path, kind: str, name: str, column: str,
        other: str) -> None:
    """A value moved by 1e-5 of its scale (beyond rounding) is refused naming the file, entry,
    grain, column and both values; moved by 1e-9 (rounding) it reads."""
    path, entry, label = _spoilt(made, kind, tmp_path, name, _moved(name, 1e-5))
    with h5py.File(path, "r") as f:
        held = float(f[entry][name][1])
    with pytest.raises(InputError) as refused:
        read_result_entry(path, entry)
    said = str(refused.value)
    assert str(path) in said and f"entry '{entry}'" in said, said
    assert f"'{column}' holds {held!r} for grain {label}, but {other}" in said, said
    assert "expected the same value to rounding (relative 1e-06)" in said, said
    path, entry, _label = _spoilt(made, kind, tmp_path, name, _moved(name, 1e-9))
    read_result_entry(path, entry)


def test_a_dipole_block_unlike_the_coefficients_covariance_is_refused(
        made: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """`results/covariance` is the first 3 × 3 of `coefficient_covariance`: the latter's
    changed (symmetrically, still a covariance matrix, its SDs' columns unchanged) is
    refused naming both datasets, the grain and both values."""
    def change(data: np.ndarray, _g: h5py.Group) -> None:
        data[1, 0, 1] *= 1.5
        data[1, 1, 0] = data[1, 0, 1]

    path, entry, label = _spoilt(made, "joint", tmp_path, "results/coefficient_covariance",
                                 change)
    with pytest.raises(InputError) as refused:
        read_result_entry(path, entry)
    said = str(refused.value)
    assert "'covariance'[0, 1] holds " in said and f"for grain {label}, but " \
        "'coefficient_covariance'[0, 1] " in said and "first 3 × 3" in said, said


def test_a_flag_unlike_its_p_value_is_refused(made: dict[str, tuple[Path, str]],
                                              tmp_path: Path) -> None:
    """higher_order_resolved is 1 exactly where higher_order_p < 0.05: a flag flipped is
    refused naming the grain, both columns and both values."""
    path, entry, label = _spoilt(made, "joint", tmp_path, "grains/higher_order_resolved",
                                 lambda data, _g: data.__setitem__(1, 1.0 - data[1]))
    with h5py.File(path, "r") as f:
        flag, p = (float(f[entry][f"grains/{k}"][1]) for k in ("higher_order_resolved",
                                                                "higher_order_p"))
    with pytest.raises(InputError) as refused:
        read_result_entry(path, entry)
    said = str(refused.value)
    assert f"'higher_order_resolved' holds {flag!r} for grain {label}, whose " \
        f"'higher_order_p' is {p!r}" in said and "below 0.05" in said, said


@pytest.mark.parametrize(("kind", "column", "by"), [("cuboid", "declination", 1e-3),
                                                    ("joint", "inclination", -1e-3)])
def test_a_direction_unlike_m_is_refused_naming_grain_column_and_both_values(
        made: dict[str, tuple[Path, str]], tmp_path: Path, kind: str, column: str,
        by: float) -> None:
    """A declination or inclination moved by 1e-3° from M's is refused, naming the grain and
    both angles; moved by 1e-9° (rounding) it reads."""
    def moved(step: float):
        return lambda data, _g: data.__setitem__(1, data[1] + step)

    path, entry, label = _spoilt(made, kind, tmp_path, f"grains/{column}", moved(by))
    with h5py.File(path, "r") as f:
        held = float(f[entry][f"grains/{column}"][1])
        m = [float(f[entry][f"grains/m{a}"][1]) for a in "xyz"]
    with pytest.raises(InputError) as refused:
        read_result_entry(path, entry)
    said = str(refused.value)
    angle = _angles(np.array(m))[0 if column == "declination" else 1]
    assert f"'{column}_deg' holds {held!r} for grain {label}, but M (" in said, said
    # the angle M gives, then '(and N more such grains)' only where there are more, or ';'
    gives = said.split(" gives ")[1].split(" (and")[0].split(";")[0]
    assert float(gives) == pytest.approx(angle, abs=1e-9)
    path, entry, _label = _spoilt(made, kind, tmp_path, f"grains/{column}", moved(1e-9))
    read_result_entry(path, entry)


def test_info_and_export_exit_2_on_disagreeing_copies_and_write_nothing(
        made: dict[str, tuple[Path, str]], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    path, entry, label = _spoilt(made, "cuboid", tmp_path, "grains/mx_errors",
                                 _moved("grains/mx_errors", 1.0))
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["info", str(path)]) == 2
    out, err = capsys.readouterr()
    assert f"  {entry}  [mmt, damaged]" in out and "'sd_mx_A_per_m'" in out, out
    assert f"for grain {label}" in err and "Traceback" not in err, err
    out_csv = tmp_path / "out.csv"
    assert main(["export", str(path), "--entry", entry, "--csv", str(out_csv)]) == 2
    _out, err = capsys.readouterr()
    assert "'sd_mx_A_per_m'" in err and f"for grain {label}" in err, err
    assert not out_csv.exists() and path.read_bytes() == before


@pytest.mark.parametrize("kind", ["cuboid", "joint"])
def test_a_result_solved_by_the_gpu_path_reads_back_with_symmetric_agreeing_blocks(
        tmp_path: Path, as_gpu, kind: str) -> None:
    """The GPU path (its NumPy stand-in) solving on the device writes blocks that are exactly
    symmetric, agree with the table and read back."""
    solver = DeviceSolver(NumpyArrays())
    as_gpu(solver)
    if kind == "cuboid":
        path, grains = write_cuboid_session(tmp_path)
        argv = ["--entry", "scan", "--grains", str(grains)]
        entry = "scan_mmt"
    else:
        path = imported(tmp_path, "a", "b")
        argv = ["--entry", "a", "--entry", "b", "--grain-format", "mpe", "--grains", str(NPZ),
                "--model", "quadrupole", "--sigma-nT", "1", "--result-entry", "joint"]
        entry = "joint"
    assert main(["mmt", "invert", str(path), *argv, "--device", "gpu",
                 "--out", str(tmp_path / "r.csv")]) == 0
    assert "solve_device_s" in solver.timings  # solved by the device code, not the host's
    saved = read_result_entry(path, entry)
    assert saved.device == "gpu"
    s = stored(path, entry)
    for name in ("covariance", "coefficient_covariance"):
        if name in s:
            np.testing.assert_array_equal(s[name], s[name].transpose(0, 2, 1))
    np.testing.assert_array_equal(s["cov_xz"], s["covariance"][:, 2, 0])
    np.testing.assert_allclose(s["mx_errors"], np.sqrt(s["covariance"][:, 0, 0]), rtol=1e-12)


class _OtherOrder(np.ndarray):
    """An array whose batched product sums the inner dimension in three parts, associated
    one way for the upper triangle and the other way for the rest: as a GPU's product may
    order a reduction differently for entries (i, j) and (j, i)."""

    def __matmul__(self, other: np.ndarray) -> np.ndarray:
        a, b = np.asarray(self), np.asarray(other)
        n = a.shape[-1]
        p1, p2, p3 = (a[..., s] @ b[..., s, :] for s in (slice(0, n // 3),
                                                          slice(n // 3, 2 * n // 3),
                                                          slice(2 * n // 3, n)))
        out = (p1 + p2) + p3
        upper = np.triu(np.ones(out.shape[-2:], bool), 1)
        out[..., upper] = (p1 + (p2 + p3))[..., upper]
        return out


def test_gpu_covariance_blocks_are_symmetric_however_the_product_sums() -> None:
    """(C + Cᵀ)/2 of each block: exactly symmetric where the device's product rounds the two
    triangles differently, and W Wᵀ's blocks to rounding."""
    w = np.random.default_rng(5).normal(size=(300, 300))
    xp = SimpleNamespace(empty=np.empty,
                         ascontiguousarray=lambda a: np.ascontiguousarray(a).view(_OtherOrder))
    rows = np.ascontiguousarray(w).reshape(100, 3, 300).view(_OtherOrder)
    raw = rows @ np.asarray(rows).transpose(0, 2, 1)
    assert np.any(raw != raw.transpose(0, 2, 1))  # the stand-in's product is asymmetric
    blocks = grain_blocks(xp, w, 3)
    np.testing.assert_array_equal(blocks, blocks.transpose(0, 2, 1))
    exact = np.einsum("gik,gjk->gij", *[w.reshape(100, 3, 300)] * 2)
    np.testing.assert_allclose(blocks, exact, rtol=0, atol=1e-12 * np.abs(exact).max())


@pytest.mark.parametrize("kind", ["cuboid", "joint"])
def test_the_ssr_carries_its_unit_and_an_earlier_ones_without_reads_the_same(
        made: dict[str, tuple[Path, str]], tmp_path: Path, kind: str) -> None:
    """SSR = V/(R³d) with lengths in µm is in µm⁻¹: `grains/ssr` had no `units` and the CSV
    column no unit; a file written before (no `units`) reads as one written now."""
    path, entry = made[kind]
    with h5py.File(path, "r") as f:
        assert f[entry]["grains/ssr"].attrs["units"] == "um-1"
    table = csv_of(made, kind)
    assert "ssr_per_um" in table and "ssr" not in table
    now = read_result_entry(path, entry).table["ssr_per_um"]
    earlier = tmp_path / "earlier.h5"
    shutil.copy(path, earlier)
    with h5py.File(earlier, "a") as f:
        del f[entry]["grains/ssr"].attrs["units"]
    table = read_result_entry(earlier, entry).table
    assert "ssr" not in table
    np.testing.assert_array_equal(table["ssr_per_um"], now)
