"""Fuzzing the TOML and JSON inputs with a whole number beyond any float (a 1 followed by
400 zeros: both formats hold whole numbers of any size, and `math.isfinite` raises
OverflowError on one), which the other fuzz tests leave out: they give 1e308, which parses
as a float. A profile, a recipe, a mask's shapes and the multipole library's scan geometry
each get one in a number and in a list of numbers; and a mask saved with `np.savez` under a
.npy name (NumPy opens the zip whatever its suffix). Each must be refused with one message
naming the file, exit 2, no traceback and nothing written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all
from shipped_recipe import shipped_recipe_text

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

REPO = Path(__file__).resolve().parents[1]
HUGE = "1" + "0" * 400
N = 12
X = np.arange(N) * 10e-6


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    bz = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(path, MapData(bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.zeros(3), name="ok"), kind="scan")
    return path


def _replace(text: str, key: str, value: str) -> str:
    return re.sub(rf"(?m)^{key} = .+$", f"{key} = {value}", text, count=1)


def _cases(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "out.h5"
    profile = (REPO / "configs" / "simulator.toml").read_text()
    for key, value in (("height_um", HUGE), ("velocity_um_per_s", HUGE),
                       ("ambient_field_uT", f"[{HUGE}, 0.0, 0.0]")):
        path = tmp / f"profile_{key}.toml"
        path.write_text(_replace(profile, key, value))
        yield Case("profile", key, ["check", "--profile", str(path)], [path], [out],
                   [path.name, key])
    recipe = shipped_recipe_text()
    for key, value in (("step_um", HUGE), ("size_um", f"[{HUGE}, 40.0]")):
        path = tmp / f"recipe_{key}.toml"
        path.write_text(_replace(recipe, key, value))
        yield Case("recipe", key, ["run", str(path), "--out", str(out), "--yes"], [path],
                   [out], [path.name, key])
    result = tmp / "r.csv"
    grains = tmp / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    for label, shapes in (("rectangle", f'{{"rectangles_um": [[0, {HUGE}, 0, 50]]}}'),
                          ("polygon", f'{{"polygons_um": [[[0, 0], [{HUGE}, 0], [0, 50]]]}}')):
        path = tmp / f"mask_{label}.json"
        path.write_text(shapes)
        yield Case("mask", label, _invert(session, grains, path, result), [path, session],
                   [result], [path.name])
    npz = tmp / "mask.npy"
    with npz.open("wb") as f:
        np.savez(f, mask=np.zeros((N, N), bool))
    yield Case("mask", ".npz under a .npy name", _invert(session, grains, npz, result),
               [npz, session], [result], [npz.name, ".npz"])
    geometry = {"Scan height Hz": 2e-5, "Scan area x-dimension Sx": 1.2e-4,
                "Scan area y-dimension Sy": 1.2e-4, "Scan x-step Sdx": 1e-5,
                "Scan y-step Sdy": 1e-5, "Sensor origin x": 0.0, "Sensor origin y": 0.0,
                "Sensor dimensions": []}
    arrays = tmp / "scan.npz"
    np.savez(arrays, Bz_array=np.zeros((N, N)))
    for key, value in (("Scan height Hz", int(HUGE)), ("Sensor origin x", int(HUGE)),
                       ("Sensor dimensions", [int(HUGE), 1e-6])):
        params = tmp / f"geometry_{key.split()[-1]}.json"
        params.write_text(json.dumps({**geometry, key: value}))
        yield Case("mpe geometry", key, ["import", "mpe", str(params), str(arrays), "--out",
                                         str(out), "--name", "q"], [params, arrays], [out],
                   [params.name, key])


def _invert(session: Path, grains: Path, mask: Path, out: Path) -> list[str]:
    return ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(grains), "--mask",
            str(mask), "--out", str(out)]


def test_a_whole_number_beyond_any_float_is_refused_by_every_reader(
        tmp_path: Path, session: Path) -> None:
    counts, failures = run_all(_cases(tmp_path, session))
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
