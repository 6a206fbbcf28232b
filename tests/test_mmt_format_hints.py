"""A grain file read with the wrong --grain-format: the message ends with the format the file
looks like, from `guess_grain_format`, which recognises each format by its first bytes."""

import zipfile
from pathlib import Path

import pytest

from smm_daq.analysis.mmt.formats.grains import guess_grain_format, read_grain_file
from smm_daq.errors import InputError

DATA = Path(__file__).parent / "data"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
DRAGONFLY = DATA / "dragonfly_components.csv"  # latin-1, as Dragonfly writes it on Windows
POINTS = DATA / "grains_points.txt"
CUBOIDS = "# grains\ngrain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n"
MMT = "4.36e+02 1.39e+03 1.09e+01 1.97e+00 9.88e-01 2.96e+00 1.0e+00\n"  # x y z hx hy hz grain


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "cuboids.csv").write_text(CUBOIDS)
    (tmp_path / "bom.csv").write_bytes(CUBOIDS.encode("utf-8-sig"))
    (tmp_path / "cuboids.txt").write_text(MMT)
    # as mmt_dipole_cuboid_inversion's CuboidDecomposition writes them: a header, half edges
    (tmp_path / "decomposed.txt").write_text("x,y,z,dx,dy,dz,i\n3.0,4.5,4.0,1.5,1.0,1.0,1\n")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    (tmp_path / "prose.txt").write_text("some notes, not grains\n")
    (tmp_path / "unicode.csv").write_bytes(  # a µm export saved as Windows "Unicode" text
        ("Label Index,Voxel count,Volume (µm³),Center Of Mass X (µm),Center Of Mass Y (µm),"
         "Center Of Mass Z (µm)\r\n1,412,34,15,17,152\r\n").encode("utf-16"))
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as z:
        z.writestr("a.txt", "not arrays")
    return {p.name: p for p in tmp_path.iterdir()} | {
        "npz": NPZ, "dragonfly": DRAGONFLY, "points": POINTS, "missing": tmp_path / "no.txt"}


@pytest.mark.parametrize(("name", "fmt"), [
    ("npz", "mpe"), ("dragonfly", "dragonfly"), ("points", "points"), ("cuboids.csv", "cuboids"),
    ("bom.csv", "cuboids"), ("cuboids.txt", "mmt"), ("decomposed.txt", "mmt"),
    ("empty.txt", None), ("prose.txt", None),
    ("other.zip", None), ("missing", None), ("unicode.csv", "dragonfly"),
])
def test_guess_grain_format(files, name, fmt):
    assert guess_grain_format(files[name]) == fmt


@pytest.mark.parametrize(("name", "fmt", "first", "guess"), [
    ("dragonfly", "points", "line 1, column 12: holds a ';'", "dragonfly"),
    ("dragonfly", "mmt", "line 1: has 18 values; expected 7", "dragonfly"),
    ("dragonfly", "cuboids", "header has unknown column(s)", "dragonfly"),
    ("npz", "points", "is not a text file", "mpe"),
    ("points", "mpe", "is not an NPZ archive", "points"),
    ("points", "cuboids", "header has unknown column(s)", "points"),
    ("points", "dragonfly", "lacks column 'Label Index'", "points"),
    ("cuboids.csv", "points", "line 2: is a header naming 'grain', 'x_um'", "cuboids"),
    ("cuboids.txt", "csv", "header has unknown column(s)", "mmt"),
    ("decomposed.txt", "points", "line 1: is a header naming 'x', 'y'", "mmt"),
])
def test_wrong_format_names_the_one_that_fits(files, name, fmt, first, guess):
    with pytest.raises(InputError) as err:
        read_grain_file(files[name], fmt)
    message = str(err.value)
    assert message.startswith(f"{files[name]}") and first in message
    said = {"mmt": "an MMT", "mpe": "an MPE"}.get(guess, f"a {guess}")
    assert message.endswith(f"; it looks like {said} file (--grain-format {guess})")
    assert "pickle" not in message


@pytest.mark.parametrize(("name", "fmt"), [
    ("cuboids.csv", "csv"), ("prose.txt", "points"), ("other.zip", "mpe"), ("missing", "mpe"),
])
def test_no_hint_when_the_format_fits_or_is_unknown(tmp_path, files, name, fmt):
    bad = tmp_path / "bad.csv"
    bad.write_text(CUBOIDS.replace("-10", "+10"))  # above the sample top
    path = bad if name == "cuboids.csv" else files[name]
    with pytest.raises(InputError) as err:
        read_grain_file(path, fmt)
    assert "looks like" not in str(err.value)


def test_mpe_refuses_text_with_its_own_message(files):
    with pytest.raises(InputError) as err:
        read_grain_file(files["prose.txt"], "mpe")
    assert str(err.value) == (f"{files['prose.txt']}: is not an NPZ archive (expected the "
                              "multipole library's particle file: particle_positions, volumes)")


def test_a_pipe_is_not_sniffed(tmp_path):
    """Reading a FIFO to guess its format would block until a writer came."""
    import os

    fifo = tmp_path / "grains.fifo"
    os.mkfifo(fifo)
    assert guess_grain_format(fifo) is None
    with pytest.raises(InputError):
        read_grain_file(fifo, "points")
