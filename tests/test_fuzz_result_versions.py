"""Fuzzing what layout version 5 of MMT result entries changed (an unresolved grain's
higher-order p-value NaN, where version 4 held 1): a real joint quadrupole result's version
attribute (versions 0 to 6, as text, float, bytes, bool, NaN) with a grain's
`higher_order_chi2`, `higher_order_p` and `higher_order_resolved` drawn among NaN, ±inf and
the values a result holds. `read_result_entry`, `smm-daq info` and `smm-daq export` must read
each or refuse it naming the file, the entry and what was expected (exit 2), the file
unchanged; a combination no result holds must be refused, not read.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_fuzz_result_entries import Mutation, _command, _judge, _replace
from test_gui_mmt_saved import write_point_session

from smm_daq.analysis.mmt.result_read import read_result_entry

VERSIONS = [None, 0, 1, 2, 3, 4, 5, 6, "5", "4", 5.0, 5.5, b"4", -1, True, math.nan, "v5"]
READ_VERSIONS = (4, 5, "5", "4", 5.0, b"4")  # of this layout: read where the values are
VALUES = [math.nan, math.inf, -math.inf, 0.0, 1.0, 0.5, 0.01, 3.0, -0.5]
HIGHER = ("higher_order_chi2", "higher_order_p", "higher_order_resolved")


@pytest.fixture(scope="module")
def joint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path, _csv = write_point_session(tmp_path_factory.mktemp("versions"), 2.0)
    read_result_entry(path, "joint")
    return path


def _holds(chi2: float, p: float, resolved: float) -> bool:
    """Whether a result may hold these for a grain (`result_agree.check_resolved`)."""
    if math.isnan(chi2):  # unresolved: p NaN (version 5) or 1 (before)
        return (math.isnan(p) or p == 1) and resolved == 0
    return chi2 >= 0 and 0 <= p <= 1 and resolved == (p < 0.05)


def _spoil(version: object, grain: int, values: tuple[float, float, float]) -> Mutation:
    def spoil(g: h5py.Group) -> None:
        if version is None:
            del g.attrs["mmt_result_version"]
        else:
            g.attrs["mmt_result_version"] = version
        for name, value in zip(HIGHER, values, strict=True):
            data = np.array(g[f"grains/{name}"][()], dtype=float)
            data[grain] = value
            _replace(g, f"grains/{name}", data)
    return Mutation(f"version {version!r}, grain {grain + 1} {values}",
                    ("mmt_result_version", *HIGHER, "declination_deg"), spoil)


DRAWN = {"version": st.sampled_from(VERSIONS), "grain": st.integers(0, 2),
         "values": st.tuples(st.sampled_from(VALUES), st.sampled_from(VALUES),
                             st.sampled_from([0.0, 1.0, 0.5, math.nan]))}


def _spoilt(joint: Path, tmp_path: Path, version: object, grain: int,
            values: tuple[float, float, float]) -> tuple[Path, Mutation]:
    spoilt = tmp_path / "j.h5"
    shutil.copy(joint, spoilt)
    m = _spoil(version, grain, values)
    with h5py.File(spoilt, "a") as f:
        m.spoil(f["joint"])
    return spoilt, m


@settings(max_examples=80, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**DRAWN)
# a p-value beside a χ² not computed (an unresolved grain's): was read, "resolved" or not
@example(version=5, grain=1, values=(math.nan, 0.01, 1.0))
@example(version=4, grain=0, values=(math.nan, 0.5, 0.0))
def test_a_result_version_and_higher_order_values_are_read_or_refused_by_name(
        joint: Path, tmp_path: Path, version: object, grain: int,
        values: tuple[float, float, float]) -> None:
    spoilt, m = _spoilt(joint, tmp_path, version, grain, values)
    outcome, problem = _judge(spoilt, "joint", m)
    assert problem is None, problem
    if outcome == "read":
        assert version in READ_VERSIONS and _holds(*values), (m.label, "read, not refused")


@settings(max_examples=6, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(**DRAWN)
@example(version=6, grain=2, values=(math.nan, math.nan, 0.0))  # newer: listed as such
def test_info_and_export_read_or_refuse_them_alike(
        joint: Path, tmp_path: Path, version: object, grain: int,
        values: tuple[float, float, float]) -> None:
    spoilt, m = _spoilt(joint, tmp_path, version, grain, values)
    outcome, _ = _judge(spoilt, "joint", m)
    csv_out = tmp_path / "j.csv"
    csv_out.unlink(missing_ok=True)
    want = 0 if outcome == "read" else 2  # info lists the entry, then says why not read
    code, problem = _command(["info", str(spoilt)], spoilt, csv_out)
    assert problem is None and code == want, ("info", m.label, code, problem)
    code, problem = _command(["export", str(spoilt), "--entry", "joint", "--csv",
                              str(csv_out)], spoilt, csv_out)
    assert problem is None and code == want, ("export", m.label, code, problem)
