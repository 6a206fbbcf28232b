"""An MMT solve that cannot fit in the machine's memory is refused before any Green's matrix is
computed, naming the unknowns, what they need and what the machine has; and the need it states
is what the solve really holds at its peak (numpy's allocations, traced)."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt import synth, synth_points
from smm_daq.analysis.mmt.solver import memory
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.inversion import invert_map
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.cli.main import main
from smm_daq.errors import InputError

UM = 1e-6
NOISE = 5e-9
DATA = Path(__file__).parent / "data"


def _point_case(thickness_um: float, density: float, model: str = "dipole"):
    rng = np.random.default_rng(3)
    sample = synth_points.make_point_sample((60 * UM, 60 * UM), thickness_um * UM, density,
                                            rng, model)
    data = synth_points.scan_points(sample, height=2 * UM, step=1 * UM, sensor_size=(0, 0),
                                    noise=NOISE, rng=rng)
    return sample, data


def _traced_peak(run) -> int:
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_solve_that_cannot_fit_is_refused_before_the_greens_matrix(monkeypatch):
    sample, data = _point_case(12, 1.5e6, "quadrupole")
    n = 8 * sample.grains.n_grains
    need = memory.solve_bytes(n, data.bz.size)
    monkeypatch.setattr(memory, "available_bytes", lambda: need - 1)
    folded: list[int] = []
    with pytest.raises(InputError) as err:
        invert_scans([Scan(data, 2 * UM, (0, 0), sigma=NOISE)], sample.grains,
                     model="quadrupole", on_block=lambda done, total: folded.append(done))
    assert str(err.value).startswith(
        f"{sample.grains.n_grains} grains × 8 (quadrupole) = {n} unknowns need at least "
        f"{need / 2**30:.1f} GiB of memory for the least-squares factor and its inverse, and "
        f"this machine has {(need - 1) / 2**30:.1f} GiB available; expected fewer unknowns")
    assert folded == []  # no block of the Green's matrix was computed
    monkeypatch.setattr(memory, "available_bytes", lambda: need)
    invert_scans([Scan(data, 2 * UM, (0, 0), sigma=NOISE)], sample.grains, model="quadrupole")


def test_a_cuboid_solve_that_cannot_fit_is_refused_too(monkeypatch):
    rng = np.random.default_rng(1)
    sample = synth.make_sample((40 * UM, 40 * UM), 15 * UM, 1e5, rng)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0, 0), noise=NOISE,
                      rng=rng)
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 10)
    with pytest.raises(InputError, match=rf"^{sample.grains.n_grains} grains × 3 = "
                                         rf"{3 * sample.grains.n_grains} unknowns need"):
        invert_map(data, sample.grains, height=1 * UM, sensor_size=(0, 0), sigma=NOISE,
                   device="cpu")


def test_where_the_memory_is_not_known_nothing_is_refused(monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda: None)
    memory.check_solve_fits(10**6, 6144, "a million unknowns")


def test_the_available_memory_is_linuxs_memavailable(tmp_path, monkeypatch):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24000000 kB\nMemFree:  100 kB\n"
                       "MemAvailable:   22500000 kB\n")
    monkeypatch.setattr(memory, "MEMINFO", meminfo)
    assert memory.available_bytes() == 22500000 * 1024


@pytest.mark.parametrize("block", [6144, 256])
@pytest.mark.parametrize("damping", [0.0, 1e-3])
def test_the_stated_need_is_the_solves_traced_peak(damping, block):
    """Within a quarter either way (more would refuse solves that fit, less would let through
    solves that do not), where the block of rows is most of the peak and where R is, folded
    in as many streams as the solve takes."""
    sample, data = _point_case(12, 4e6)
    n = 3 * sample.grains.n_grains
    assert n > 500
    peak = _traced_peak(lambda: invert_scans([Scan(data, 2 * UM, (0, 0), sigma=NOISE)],
                                             sample.grains, damping=damping, block=block))
    streams = qr_streams.stream_count(n + 1, data.bz.size, block)
    rows = max(qr_streams.plan(data.bz.size, block, streams)[1])
    need = memory.solve_bytes(n, rows, damping=damping > 0, streams=streams)
    assert 0.8 < need / peak < 1.25, (need, peak)


def test_the_command_line_refuses_with_exit_2_and_writes_nothing(tmp_path, monkeypatch,
                                                                 demo_session):
    h5, npz = demo_session, DATA / "MagneticSample_mpe_demo.npz"
    before = h5.read_bytes()
    monkeypatch.setattr(memory, "available_bytes", lambda: 1 << 10)
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(npz), "--model", "octupole", "--out", str(out)]) == 2
    assert not out.exists()
    assert h5.read_bytes() == before
    with h5py.File(h5) as f:
        assert list(f) == ["qdm"]


def _singular_triangle(n: int = 120, rows: int = 400):
    """A triangle of unit-norm columns with two pairs of equal columns, and the minimum-norm
    least-squares solution from NumPy's lstsq of the matrix itself (the referee)."""
    from smm_daq.analysis.mmt.solver.inversion import Triangle

    rng = np.random.default_rng(11)
    q = rng.standard_normal((rows, n))
    q[:, 7] = q[:, 3]
    q[:, 100] = q[:, 50]
    q /= np.linalg.norm(q, axis=0)
    phi = rng.standard_normal(rows)
    qq, r = np.linalg.qr(q)
    expected = np.linalg.lstsq(q, phi, rcond=None)[0]
    return Triangle(np.asfortranarray(r), qq.T @ phi), expected


@pytest.mark.parametrize(("have", "driver"), [(None, "gesdd"), ("gesdd", "gesdd"),
                                              ("gesvd", "gesvd")])
def test_a_singular_solve_takes_the_svd_that_fits(monkeypatch, have, driver):
    """A singular R at the lab's size (12,900 unknowns) needs 6.2 GiB for dgesdd's SVD beyond
    R: where that is not available, dgesvd's (2.5 GiB) gives the same pseudo-inverse."""
    from scipy import linalg

    from smm_daq.analysis.mmt.solver import inversion

    tri, expected = _singular_triangle()
    n = tri.c.size
    monkeypatch.setattr(memory, "available_bytes",
                        lambda: None if have is None else memory.svd_bytes(n, have))
    used: list[str] = []
    svd = linalg.svd

    def spy(a, **kwargs):
        used.append(kwargs["lapack_driver"])
        return svd(a, **kwargs)

    monkeypatch.setattr(inversion.linalg, "svd", spy)
    with pytest.warns(inversion.SingularWarning, match="2 of 120 directions unresolved"):
        sol = inversion.solve_triangle(tri)
    assert used == [driver]
    np.testing.assert_allclose(sol.x, expected, rtol=1e-9, atol=1e-12)
    assert np.flatnonzero(sol.unresolved).tolist() == [3, 7, 50, 100]


def test_a_singular_solve_whose_svd_cannot_fit_is_refused_saying_what_would_do(monkeypatch):
    from smm_daq.analysis.mmt.solver import inversion

    tri, _ = _singular_triangle()
    need = memory.svd_bytes(120, "gesvd")
    monkeypatch.setattr(memory, "available_bytes", lambda: need - 1)
    with pytest.raises(InputError) as err:
        inversion.solve_triangle(tri)
    assert str(err.value) == (
        "the least-squares factor of 120 unknowns is singular to working precision, and its SVD "
        "(the pseudo-inverse that leaves the unresolved grains out) needs "
        f"{need / 2**30:.1f} GiB more memory than the {(need - 1) / 2**30:.1f} GiB available; "
        "expected more memory, a damping (--damping, which needs no SVD), or fewer grains "
        "(only those the map resolves)")


@pytest.mark.parametrize("driver", ["gesdd", "gesvd"])
def test_the_svd_needs_what_it_states(monkeypatch, driver):
    """`svd_bytes` against the solve's traced peak beyond R and its scaled copy."""
    from smm_daq.analysis.mmt.solver import inversion

    tri, _ = _singular_triangle(n=600, rows=700)
    n = tri.c.size
    monkeypatch.setattr(memory, "available_bytes",
                        lambda: memory.svd_bytes(n, driver))
    tracemalloc.start()
    try:
        with pytest.warns(inversion.SingularWarning):
            inversion.solve_triangle(tri)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    beyond = peak - 8 * n * n  # the scaled copy of R, which the SVD overwrites
    assert 0.85 <= memory.svd_bytes(n, driver) / beyond <= 1.15
