"""Fuzzing the JSON and TOML inputs beyond what Python's parsers take, which the other fuzz
tests leave out: arrays and objects nested deeper than they follow (a file of 100,000 '[':
`json` and `tomllib` recurse, and raise RecursionError), and integers of more digits than
Python converts (over 4,300: a plain ValueError, not the parsers' own error). The inputs: the
MMT community's scan parameters, the multipole library's scan geometry, a mask's shapes, a
profile, a recipe, and the plan a scan entry stores (read back by `resume`). Each must be
refused with one message naming the file, exit 2, no traceback and nothing written. The
profile a scan entry stores (its field tolerance read by every listing) is only read where
it can be: an entry of such a profile is listed with the default tolerance.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
N = 12
X = np.arange(N) * 10e-6
MAP = "1e-6 2e-6 3e-6 4e-6\n1e-6 2e-6 3e-6 4e-6\n1e-6 2e-6 3e-6 4e-6\n"
INPUTS = ("mmt-scan params", "mpe geometry", "mask shapes", "profile", "recipe")


def _nested(depth: int, opener: str) -> str:
    closer = {"[": "]", '{"a": ': "}"}[opener]
    return opener * depth + "1" + closer * depth


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("deep") / "s.h5"
    bz = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(path, MapData(bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.array([0.0, 4e-5, 0.0]), name="ok"),
                    kind="scan")
    return path


def _case(kind: str, deep: str, tmp: Path, session: Path) -> Case:
    out = tmp / "out.h5"
    if kind == "mmt-scan params":
        bad, scan = tmp / "params.json", tmp / "map.txt"
        bad.write_text(deep)
        scan.write_text(MAP)
        return Case(kind, "", ["import", "mmt-scan", str(scan), "--params", str(bad), "--out",
                               str(out), "--name", "q"], [bad, scan], [out], [bad.name])
    if kind == "mpe geometry":
        bad, arrays = tmp / "meta.json", tmp / "sample.npz"
        bad.write_text(deep)
        buf = io.BytesIO()
        np.savez(buf, Bz_array=np.zeros((N, N)))
        arrays.write_bytes(buf.getvalue())
        return Case(kind, "", ["import", "mpe", str(bad), str(arrays), "--out", str(out),
                               "--name", "q"], [bad, arrays], [out], [bad.name])
    if kind == "mask shapes":
        bad, grains, result = tmp / "mask.json", tmp / "points.txt", tmp / "r.csv"
        bad.write_text(json.dumps({"rectangles_um": "X"}).replace('"X"', deep))
        grains.write_text("5.5e-05 5.5e-05 -1e-05 1e-16 1\n")
        return Case(kind, "", ["mmt", "invert", str(session), "--entry", "ok", "--grains",
                               str(grains), "--grain-format", "points", "--mask", str(bad),
                               "--out", str(result)], [bad, session, grains], [result],
                    [bad.name])
    if kind == "profile":
        bad = tmp / "profile.toml"
        bad.write_text((REPO / "configs" / "simulator.toml").read_text()
                       + f"\n[extra]\nx = {deep}\n")
        return Case(kind, "", ["scan", "--profile", str(bad), "--center-um", "12500,12500",
                               "--size-um", "20,20", "--step-um", "10", "--name", "s",
                               "--out", str(out)], [bad], [out], [bad.name, "TOML"])
    bad = tmp / "recipe.toml"
    bad.write_text((REPO / "configs" / "recipes" / "remanent-and-induced.toml").read_text()
                   .replace('kind = "zero_field"', f"kind = {deep}", 1))
    return Case(kind, "", ["run", str(bad), "--out", str(out), "--yes"], [bad], [out],
                [bad.name, "TOML"])


@settings(max_examples=30, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(INPUTS), depth=st.integers(2_000, 200_000),
       opener=st.sampled_from(["[", '{"a": ']))
def test_input_nested_beyond_the_parser_is_refused(
        tmp_path: Path, session: Path, kind: str, depth: int, opener: str) -> None:
    if kind in ("profile", "recipe") and opener != "[":
        opener = "["  # TOML's inline tables nest as {a = ...}: arrays make the same depth
    folder = tmp_path / f"{kind}-{depth}".replace(" ", "_")
    folder.mkdir()
    case = _case(kind, _nested(depth, opener), folder, session)
    case.label = f"{depth} × {opener!r}"
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(kind=st.sampled_from(INPUTS), digits=st.integers(4_301, 100_000),
       sign=st.sampled_from(["", "-"]))
def test_an_integer_of_more_digits_than_python_reads_is_refused(
        tmp_path: Path, session: Path, kind: str, digits: int, sign: str) -> None:
    folder = tmp_path / f"{kind}-{digits}".replace(" ", "_")
    folder.mkdir()
    case = _case(kind, sign + "7" * digits, folder, session)
    case.label = f"{sign}{digits} digits"
    _, failures = run_all([case])
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("value", [_nested(100_000, "["), "7" * 5_000, "1" + "0" * 400])
def test_a_stored_profile_beyond_the_parser_is_listed_with_the_default_tolerance(
        tmp_path: Path, value: str) -> None:
    """Every listing reads the field tolerance of the profile each scan stores: one nested
    too deep, of an integer too long to convert, or of a tolerance beyond any float gives the
    default tolerance, as a profile without one does (it had ended `info` and `subtract` in
    a traceback, or called the whole file corrupt)."""
    path = tmp_path / "s.h5"
    bz = np.zeros((N, N))
    for name, field in (("rem", 0.0), ("in", 4e-5)):
        write_map_entry(path, MapData(bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                      applied_field=np.array([0.0, field, 0.0]), name=name),
                        kind="scan")
    profile = (REPO / "configs" / "simulator.toml").read_text().replace(
        "field_tolerance_nT = 50.0", f"field_tolerance_nT = {value}")
    with h5py.File(path, "a") as f:
        for name in ("rem", "in"):
            f[f"{name}/profile"] = profile
    out = tmp_path / "x.csv"
    cases = [Case("stored profile", "info", ["info", str(path)], [], may_pass=True),
             Case("stored profile", "export", ["export", str(path), "--entry", "in", "--csv",
                                               str(out)], [], may_pass=True)]
    _, failures = run_all(cases)
    assert not failures, "\n".join(failures)
    assert out.exists()


@pytest.mark.parametrize("text", ["plan", "profile_fingerprint"])
def test_a_stored_text_nested_beyond_the_parser_is_refused(tmp_path: Path, text: str) -> None:
    """`resume` reads the plan and the profile's fingerprint an entry stores as JSON; a
    damaged copy may hold anything (the fingerprint refused was quoted whole, 200 kB)."""
    path = tmp_path / "s.h5"
    assert main(["scan", "--center-um", "12500,12500", "--size-um", "60,40", "--step-um",
                 "20", "--name", "s1", "--out", str(path)]) == 0
    with h5py.File(path, "a") as f:
        f["s1/status"][()] = "aborted"
        del f[f"s1/{text}"]
        f[f"s1/{text}"] = _nested(100_000, "[")
    _, failures = run_all([Case("resume", text, ["resume", str(path), "--entry", "s1"],
                                [path], [], [path.name, "'s1'"])])
    assert not failures, "\n".join(failures)
    with pytest.raises(InputError) as refused:
        load_resumable(path, "s1")
    assert len(str(refused.value)) < 400  # the 200 kB text is not quoted whole
    with pytest.raises(InputError, match="not JSON"):
        ScanPlan.from_text(_nested(100_000, "["), source="s.h5, entry 's1', 'plan'")
