"""What `mmt invert` and `mmt synth` say of the sensor's size and height, and of a grain file
read in the wrong format."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt.formats.grains import read_grain_file
from smm_daq.cli.main import main
from smm_daq.errors import InputError

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
MMT = "4.36e+02 1.39e+03 1.09e+01 1.97e+00 9.88e-01 2.96e+00 1.0e+00\n"  # x y z hx hy hz grain


@pytest.mark.parametrize("command", ["invert", "synth"])
def test_sensor_size_help_says_full_widths(capsys, command):
    with pytest.raises(SystemExit):
        main(["mmt", command, "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert "FULL widths W,L in µm (the MMT libraries' JSON give half-lengths" in said


@pytest.mark.parametrize("more", [
    [],  # the cuboid inversion of one scan
    ["--model", "dipole"],  # the joint solver
    ["--model", "dipole", "--entry", "qdm2"],  # one height per scan
])
def test_a_negative_height_is_refused_saying_why(tmp_path, capsys, more):
    h5 = tmp_path / "s.h5"
    for name in ("qdm", "qdm2"):
        assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name",
                     name]) == 0
    grains = tmp_path / "g.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,5,4,-3,1,1,1\n")
    height = "2,-2" if "qdm2" in more else "-2"
    before = h5.read_bytes()
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(grains),
                 "--height-um", height, "--out", str(tmp_path / "r.csv"), *more]) == 2
    err = capsys.readouterr().err
    assert f"--height-um is '{height}'; expected the sensor's height above the sample top" in err
    assert "the cuboid library's z-down convention, the same height given here as 2" in err
    assert h5.read_bytes() == before and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize(("text", "looks", "said"), [(MMT, "mmt", "an MMT"), (
    "Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);Center Of Mass Y (mm);"
    "Center Of Mass Z (mm)\n1;4;1e-9;0.01;0.01;0.1\n", "dragonfly", "a dragonfly")])
def test_the_grain_format_hint_is_given_once(tmp_path, text, looks, said):
    """One hint, the format the file looks like: not also the cuboid reader's "or use
    --grain-format mmt", which contradicted it for a Dragonfly export."""
    path = tmp_path / "grains.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError) as refused:
        read_grain_file(path, "cuboids")
    message = str(refused.value)
    assert message.count("--grain-format") == 1, message
    assert message.endswith(f"; it looks like {said} file (--grain-format {looks})")


def test_each_import_reads_a_negative_scan_height_as_its_library_does(tmp_path, capsys):
    """The cuboid library inverts a negative `Scan height` in its z-down frame (its tutorial),
    so `import mmt-scan` reads it as that height; the multipole library's frame is z up from
    the sample top (a negative `Scan height Hz` only warned of: the sensors inside the
    sample), so `import mpe` refuses one, naming the key, the value and why."""
    params = json.loads(JSON.read_text(encoding="utf-8"))
    params["Scan height Hz"] = -2e-6
    bad = tmp_path / "negative.json"
    bad.write_text(json.dumps(params), encoding="utf-8")
    h5 = tmp_path / "s.h5"
    capsys.readouterr()
    assert main(["import", "mpe", str(bad), str(NPZ), "--out", str(h5), "--name", "q"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "key 'Scan height Hz' is -2e-06; expected the height of the sensors' centres " \
        "above the sample top" in err and "z points up" in err and "no z-down frame" in err, err
    scan = tmp_path / "map.txt"
    np.savetxt(scan, np.zeros((3, 4)))
    cuboid = tmp_path / "params.json"
    cuboid.write_text(json.dumps({"Sensor center domain LL-x-y": [0.0, 0.0],
                                  "Sensor center domain UR-x-y": [3e-6, 2e-6],
                                  "Scan spacing": 1e-6, "Scan height": -2e-6}))
    assert main(["import", "mmt-scan", str(scan), "--params", str(cuboid), "--out", str(h5),
                 "--name", "c"]) == 0
    with h5py.File(h5, "r") as f:
        assert f["c/instrument/sensor/height"][()] == pytest.approx(2e-6)
