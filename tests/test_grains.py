"""Grain files: both formats, and every kind of bad input refused with file and line."""

from __future__ import annotations

import numpy as np
import pytest

from smm_daq.analysis.grains import GeometryWarning, read_grains, write_grains_csv
from smm_daq.errors import InputError

UM = 1e-6
HEADER = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n"


def _write(tmp_path, text, name="g.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_csv_with_columns_in_any_order_comments_and_spread_grains(tmp_path):
    p = _write(tmp_path, "# micro-CT export\nx_um,grain,y_um,z_um,dx_um,dy_um,dz_um\n"
                         "0,7,0,-2,1,1,1\n5,3,5,-3,2,2,2\n\n1,7,0,-2,1,1,1\n")
    g = read_grains(p)
    assert list(g.labels) == [3, 7]
    assert g.start.tolist() == [0, 1, 3]
    np.testing.assert_allclose(g.volumes(), [8 * UM**3, 2 * UM**3])
    np.testing.assert_allclose(g.centroids()[1], [0.5 * UM, 0, -2 * UM])
    assert g.lines.tolist() == [4, 3, 6]


def test_mmt_format_half_edges_and_depth(tmp_path):
    p = _write(tmp_path, "1.0 2.0 3.0 0.5 0.25 1.0 4\n", "g.txt")
    g = read_grains(p, "mmt")
    np.testing.assert_allclose(g.cuboids[0], np.array([1, 2, -3, 1, 0.5, 2]) * UM)
    assert g.labels.tolist() == [4]


@pytest.mark.parametrize(("text", "match"), [
    (HEADER.replace("dz_um", "dz_um,colour") + "1,0,0,-2,1,1,1,red\n", "unknown column"),
    (HEADER.replace(",dz_um", "") + "1,0,0,-2,1,1\n", "missing column"),
    (HEADER + "1,0,0,-2,1,1\n", "line 2: has 6 values"),
    (HEADER + "1,0,zero,-2,1,1,1\n", "line 2: y_um is 'zero'"),
    (HEADER + "1.5,0,0,-2,1,1,1\n", "line 2: grain label"),
    (HEADER + "1,0,0,-2,1,-1,1\n", "line 2: has edges 1, -1, 1 µm"),
    (HEADER + "1,0,0,-2,1,1,1\n1,0,0,0.2,1,1,1\n", "line 3: grain 1 reaches z = 0.7"),
    (HEADER + "1,0,0,-2,1,1,1\n2,5,5,-2,1,1,1\n1,0.5,0.5,-2,1,1,1\n",
     "cuboids of grain 1 overlap \\(lines 2 and 4\\)"),
    ("", "is empty"),
])
def test_bad_csv_is_refused_naming_file_and_line(tmp_path, text, match):
    p = _write(tmp_path, text)
    with pytest.raises(InputError, match=match) as err:
        read_grains(p)
    assert str(p) in str(err.value)


@pytest.mark.parametrize(("fmt", "text", "hint"), [
    ("csv", HEADER + "1,0,0,0.2,1,1,1\n", "(z up, or use --grain-format mmt for depths)"),
    ("mmt", "0 0 -0.2 0.5 0.5 0.5 1\n", "(depths positive down, the top at 0)"),
])
def test_a_cuboid_above_the_top_is_refused_with_its_formats_hint(tmp_path, fmt, text, hint):
    """Only a z-up file is pointed to the depth format: one read as depths already is told
    its depths are positive down."""
    p = _write(tmp_path, text)
    with pytest.raises(InputError) as err:
        read_grains(p, fmt)
    assert str(err.value).endswith(f"expected grains inside the sample {hint}")


def test_mmt_format_wrong_column_count(tmp_path):
    p = _write(tmp_path, "1 2 3 0.5 0.5 0.5 1\n1 2 3 0.5 0.5 1\n", "g.txt")
    with pytest.raises(InputError, match="line 2: has 6 values"):
        read_grains(p, "mmt")


def test_cuboids_of_different_grains_overlapping_warn_but_are_kept(tmp_path):
    p = _write(tmp_path, HEADER + "1,0,0,-2,1,1,1\n2,0.5,0,-2,1,1,1\n")
    with pytest.warns(GeometryWarning, match="grains 1 and 2, lines 2 and 3"):
        g = read_grains(p)
    assert g.n_grains == 2


def test_touching_cuboids_are_not_an_overlap(tmp_path):
    p = _write(tmp_path, HEADER + "1,0,0,-2,1,1,1\n1,1,0,-2,1,1,1\n1,0,0,-1,1,1,1\n")
    assert read_grains(p).volumes()[0] == pytest.approx(3 * UM**3)


def test_csv_round_trip(tmp_path):
    p = _write(tmp_path, HEADER + "2,1,2,-3,1,2,3\n5,10,2,-3,1,2,0.5\n")
    g = read_grains(p)
    out = tmp_path / "out.csv"
    write_grains_csv(out, g)
    h = read_grains(out)
    np.testing.assert_allclose(h.cuboids, g.cuboids)
    assert h.labels.tolist() == g.labels.tolist()


def test_touching_cuboids_at_awkward_coordinates_survive_a_round_trip(tmp_path):
    """Coordinates come back as the same doubles (9 significant digits used to move them by up
    to 5e-7 µm, which against sub-µm edges can exceed the touching tolerance)."""
    from smm_daq.analysis.grains import from_arrays

    e = 1e-3 / 3  # µm
    x0 = 123.456789012
    cub = np.array([[x0, 7.1, -2.0, e, 1.0, 1.0], [x0 + e, 7.1, -2.0, e, 1.0, 1.0]]) * UM
    g = from_arrays(cub, np.array([4, 4]))
    out = tmp_path / "out.csv"
    write_grains_csv(out, g)
    h = read_grains(out)
    np.testing.assert_array_equal(h.cuboids / UM, g.cuboids / UM)


def test_mmt_cuboids_saved_with_a_byte_order_mark_are_read(tmp_path):
    """Notepad's UTF-8 starts with a byte-order mark: read as part of the first x, it refused
    the file with an x of '\\ufeff436'."""
    rows = np.array([[436.0, 1390.0, 10.9, 1.97, 0.988, 2.96, 1]])
    plain, marked = tmp_path / "plain.txt", tmp_path / "bom.txt"
    np.savetxt(plain, rows)
    marked.write_text(plain.read_text(), encoding="utf-8-sig")
    np.testing.assert_array_equal(read_grains(marked, "mmt").cuboids,
                                  read_grains(plain, "mmt").cuboids)


def test_mmt_cuboids_with_an_empty_field_between_commas_are_refused_where_it_is(tmp_path):
    """A spreadsheet's export with a cell left empty (8 fields, one empty): split on commas
    and spaces, the empty field vanished and every later value was read one column along."""
    p = _write(tmp_path, "1,2,3,0.5,0.5,0.5,1\n  1,2,,3,0.5,0.5,0.5,1\n", "g.txt")
    with pytest.raises(InputError, match=r"g\.txt, line 2, column 7: holds an empty field "
                                         r"between commas; expected 7 values"):
        read_grains(p, "mmt")
    trailing = _write(tmp_path, "1,2,3,0.5,0.5,0.5,1,\n", "t.txt")  # a trailing comma is none
    assert read_grains(trailing, "mmt").n_grains == 1


def test_mmt_cuboids_with_a_latin1_comment_are_read(tmp_path):
    """A comment typed in a Windows editor (µm in Latin-1) is read, as the point lists and
    Dragonfly exports are; it was refused as 'not a text file'."""
    p = tmp_path / "g.txt"
    p.write_bytes("# positions in µm\n1 2 3 0.5 0.25 1.0 4\n".encode("latin-1"))
    np.testing.assert_allclose(read_grains(p, "mmt").cuboids[0],
                               np.array([1, 2, -3, 1, 0.5, 2]) * UM)


def test_csv_cuboids_with_a_latin1_comment_are_read(tmp_path):
    """As the MMT text format and the other grain readers read it; the CSV reader refused the
    file as 'not a text file'."""
    p = tmp_path / "g.csv"
    p.write_bytes(("# Körner, Kanten in µm\n" + HEADER + "1,0,0,-2,1,1,1\n").encode("latin-1"))
    np.testing.assert_allclose(read_grains(p).cuboids[0], np.array([0, 0, -2, 1, 1, 1]) * UM)


def test_mmt_cuboids_under_a_header_are_read_by_position(tmp_path):
    """mmt_dipole_cuboid_inversion's CuboidDecomposition writes 'x,y,z,dx,dy,dz,i' (half edges)
    above its rows, which its readers skip (skiprows=1); it was refused as "x is 'x'"."""
    p = _write(tmp_path, "x,y,z,dx,dy,dz,i\n3.0,4.5,4.5,1.5,1.0,1.0,1\n", "g.txt")
    np.testing.assert_allclose(read_grains(p, "mmt").cuboids[0],
                               np.array([3, 4.5, -4.5, 3, 2, 2]) * UM)


@pytest.mark.parametrize(("text", "match"), [
    ("1 2 3 0.5 0.5 0.5 1\nx y z hx hy hz grain\n", r"line 2, column 1: x is 'x'"),
    ("1 2 3 0.5 0.5 0.5 1\n1 2 3a 0.5 0.5 0.5 1\n", r"line 2, column 5: z is '3a'"),
    ("1, 2, 3, 0.5, 0.5, 0.5, one\n", r"line 1, column 25: grain label is 'one'"),
    (HEADER + "1,0,0,2,1,1,1\n", r"line 1: is the grain CSV's header \(grain,x_um"),
    ("i,x,y,z,dx,dy,dz\n1,3.0,4.5,4.5,3,2,2\n", r"line 1: is a header naming the grain first"),
])
def test_mmt_cuboids_the_library_could_not_read_are_refused_at_line_and_column(tmp_path, text,
                                                                                  match):
    """A header below the rows, or a word among the numbers; and headers whose columns read
    by position would be wrong: the grain CSV's, and CuboidDecomposition's earlier one (the
    grain first, full edges)."""
    with pytest.raises(InputError, match=match):
        read_grains(_write(tmp_path, text, "g.txt"), "mmt")
