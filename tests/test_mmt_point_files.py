"""Point-grain lists (x y z volume label) as the tools that write them write them: numpy.savetxt
with its delimiters, headers and line ends, Python's csv module, Windows editors' encodings;
each read as numpy.loadtxt reads it, or refused by line and column, on the command line too."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest

from smm_daq.analysis.mmt.formats.points import read_points
from smm_daq.cli.main import main
from smm_daq.errors import InputError

DATA = Path(__file__).parent / "data"
GRAINS = np.array([[1.5e-05, 2.25e-05, -3e-06, 1.2e-17, 1],
                   [4e-05, 5e-05, -6.5e-06, 2.5e-18, 7]])
HEADER = "x y z volume label"


def _same(path: Path, referee: np.ndarray) -> None:
    got = read_points(path)
    np.testing.assert_array_equal(got.positions, referee[:, :3])
    np.testing.assert_array_equal(got.volume, referee[:, 3])
    assert got.labels.tolist() == referee[:, 4].astype(int).tolist()


def _csv(path: Path, header: bool) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)  # Excel's dialect: ',' and CRLF
        if header:
            w.writerow(HEADER.split())
        w.writerows([[repr(float(v)) for v in row[:4]] + [int(row[4])] for row in GRAINS])


SAVED = {
    "savetxt": lambda p: np.savetxt(p, GRAINS),
    "tabs": lambda p: np.savetxt(p, GRAINS, delimiter="\t"),
    "commas": lambda p: np.savetxt(p, GRAINS, delimiter=","),
    "Windows line ends": lambda p: np.savetxt(p, GRAINS, newline="\r\n"),
    "'#' header": lambda p: np.savetxt(p, GRAINS, header=HEADER),
    "scientific, label %d": lambda p: np.savetxt(p, GRAINS, fmt="%.6e %.6e %.6e %.6e %d"),
    "csv module": lambda p: _csv(p, header=False),
}


@pytest.mark.parametrize("kind", list(SAVED))
def test_point_lists_as_numpy_and_csv_write_them(tmp_path, kind):
    path = tmp_path / "g.txt"
    SAVED[kind](path)
    _same(path, np.loadtxt(path, delimiter="," if "," in path.read_text() else None))


HEADED = {
    "savetxt, no comment mark": lambda p: np.savetxt(p, GRAINS, header=HEADER, comments=""),
    "csv module": lambda p: _csv(p, header=True),
    "with units": lambda p: np.savetxt(p, GRAINS, delimiter="\t", comments="",
                                       header="X (m)\tY (m)\tZ (m)\tVolume [m^3]\tLabel"),
}


@pytest.mark.parametrize("kind", list(HEADED))
def test_a_header_naming_the_columns_is_skipped(tmp_path, kind):
    """numpy.savetxt(header=..., comments="") and spreadsheets write the names unmarked;
    read as numbers they refused the whole file."""
    path = tmp_path / "g.txt"
    HEADED[kind](path)
    _same(path, np.loadtxt(path, delimiter="," if kind == "csv module" else None, skiprows=1))


@pytest.mark.parametrize("header", ["label x y z volume", "x y z label volume",
                                    "x y z volume label id"])
def test_a_header_naming_other_columns_is_refused(tmp_path, header):
    """The columns are read by position: a header in another order says they would be
    misread."""
    path = tmp_path / "g.txt"
    np.savetxt(path, GRAINS, header=header, comments="")
    words = ", ".join(repr(w) for w in header.split())
    with pytest.raises(InputError, match=rf"g\.txt, line 1: is a header naming {words}; "
                       "expected no header, or one naming x y z volume label in that order"):
        read_points(path)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp1252", "latin-1", "utf-16"])
def test_text_in_the_encodings_windows_editors_save(tmp_path, encoding):
    """Notepad's UTF-8 with a byte-order mark, "ANSI" (a comment with ³ and µ) and "Unicode"."""
    buf = io.StringIO()
    np.savetxt(buf, GRAINS, header="volume in m³; grains of 10 µm", newline="\r\n")
    path = tmp_path / "g.txt"
    path.write_bytes(buf.getvalue().encode(encoding))
    _same(path, GRAINS)


def test_a_comment_after_the_numbers_is_skipped_as_loadtxt_skips_it(tmp_path):
    path = tmp_path / "g.txt"
    path.write_text("1.5e-05 2.25e-05 -3e-06 1.2e-17 1  # the big one\n"
                    "4e-05 5e-05 -6.5e-06 2.5e-18 7#\n")
    _same(path, np.loadtxt(path))


@pytest.mark.parametrize(("row", "column"), [("1.5e-05,,2.25e-05,-3e-06,1.2e-17,1", 9),
                                             (",1.5e-05,2.25e-05,-3e-06,1.2e-17,1", 1),
                                             ("1.5e-05, 2.25e-05, -3e-06, 1.2e-17, ,1", 37)])
def test_an_empty_field_between_commas_is_refused(tmp_path, row, column):
    """A missing number (here y) with one column too many: read as five, every value after it
    shifted one column along."""
    path = tmp_path / "g.csv"
    path.write_text(row + "\n")
    with pytest.raises(ValueError):
        np.loadtxt(path, delimiter=",")  # the referee refuses it too
    with pytest.raises(InputError, match=rf"g\.csv, line 1, column {column}: holds an empty field "
                       "between commas; expected 5 numbers: x y z volume label"):
        read_points(path)


@pytest.mark.parametrize(("rows", "said"), [
    ("1.5e-05 2.25e-05 -3e-06 1.2e-17 grain 1\n", "line 1: has 6 fields; expected 5"),
    ("1.5e-05 2.25e-05 -3e-06 1.2e-17 a\n", "line 1, column 33: label is 'a'; expected a whole"),
    ("1.5e-05 2.25e-05 -3e-06 1.2e-17 1\n4e-05 5e-05 -6.5e-06 2.5e-18 1\n",
     "line 2: label 1 appears more than once; expected one grain per label"),
    ("1.5e-05 2.25e-05 nan 1.2e-17 1\n", "line 1, column 18: z is 'nan'; expected a finite"),
    ("1.5e-05 2.25e-05 -3e-06 inf 1\n", "line 1, column 25: volume is 'inf'; expected a volume"),
    ("1.5e-05 -inf -3e-06 1.2e-17 1\n", "line 1, column 9: y is '-inf'; expected a finite"),
], ids=["label with a space", "text label", "duplicate label", "NaN", "inf", "-inf"])
def test_bad_rows_refused_by_line_and_column(tmp_path, rows, said):
    path = tmp_path / "g.txt"
    path.write_text(rows)
    with pytest.raises(InputError) as caught:
        read_points(path)
    assert str(caught.value).startswith(f"{path}, {said}")


def test_a_bad_point_list_is_refused_by_the_command_line_which_writes_nothing(tmp_path, capsys,
                                                                            demo_session):
    h5 = demo_session
    grains, out = tmp_path / "g.csv", tmp_path / "r.csv"
    grains.write_text("x,y,z,volume,label\n5e-06,,5e-06,-2e-06,1e-18,1\n")
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "points",
                 "--grains", str(grains), "--out", str(out)]) == 2
    assert (f"{grains}, line 2, column 7: holds an empty field between commas"
            in capsys.readouterr().err)
    assert not out.exists()


@pytest.mark.parametrize("text", ["x;y;z;volume;label\n1,5e-05;2,25e-05;-3e-06;1,2e-17;1\n",
                                  "1,5e-05;2,25e-05;-3e-06;1,2e-17;1\n"])
def test_a_semicolon_separated_export_is_refused_as_such(tmp_path, text):
    """A spreadsheet in a decimal-comma locale separates by ';': the refusal says so, not
    that the line is a header of unknown columns or has one field."""
    path = tmp_path / "g.csv"
    path.write_text(text)
    with pytest.raises(InputError, match=r"g\.csv, line 1, column (2|8): holds a ';'; expected x "
                       "y z volume label separated by spaces, tabs or commas, with decimal "
                       "points"):
        read_points(path)


def test_volumes_in_cubic_micrometres_are_refused_not_fitted(tmp_path, capsys):
    """A point list with its volumes in µm³ (positions right, in m) would fit magnetizations
    10¹⁸ times too small with tiny SDs; each grain's sphere would dwarf its depth."""
    scan = tmp_path / "scan.h5"
    assert main(["mmt", "synth", "--model", "dipole", "--out", str(scan), "--grains-out",
                 str(tmp_path / "g.txt"), "--truth-out", str(tmp_path / "t.csv"),
                 "--size-um", "30,30", "--thickness-um", "8", "--density-per-mm3", "3e5",
                 "--step-um", "2"]) == 0
    rows = np.loadtxt(tmp_path / "g.txt", ndmin=2)
    rows[:, 3] *= 1e18  # m³ → µm³
    np.savetxt(tmp_path / "um3.txt", rows)
    capsys.readouterr()
    code = main(["mmt", "invert", str(scan), "--entry", "synthetic", "--grains",
                 str(tmp_path / "um3.txt"), "--grain-format", "points", "--out",
                 str(tmp_path / "r.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "expected volumes in m³" in err and "um3.txt, line 1" in err
    assert not (tmp_path / "r.csv").exists()
    assert main(["mmt", "invert", str(scan), "--entry", "synthetic", "--grains",
                 str(tmp_path / "g.txt"), "--grain-format", "points", "--out",
                 str(tmp_path / "r.csv")]) == 0  # the same grains in m³ are fitted
