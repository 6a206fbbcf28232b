"""Dragonfly connected-components exports as they are written: by Python's csv module in
Dragonfly's dialect (';', CRLF, a trailing ';', latin-1 with ³ or UTF-8 with a byte-order
mark, decimal commas), re-saved by a spreadsheet (blank rows of separators) or by pandas
(quoted decimal commas in a ','-separated file); each read to the same grains or refused by
line and column, on the command line too."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from smm_daq.analysis.mmt.formats.dragonfly import read_dragonfly
from smm_daq.cli.main import main
from smm_daq.errors import InputError

# the Dragonfly files read here give no sample top on purpose; its warning is checked in
# test_mmt_formats
pytestmark = pytest.mark.filterwarnings("ignore:.*no sample top given")

DATA = Path(__file__).parent / "data"
HEADER = ["Label Index", "Voxel count", "Volume (mm³)", "Surface area (mm²)",
          "Center Of Mass X (mm)", "Center Of Mass Y (mm)", "Center Of Mass Z (mm)"]
ROWS = [[1, 412, 3.4e-08, 4.3e-05, 0.015, 0.017, 0.152],
        [2, 57, 4.7e-09, 1.1e-05, 0.03, 0.008, 0.1555]]
VOLUMES = [3.4e-17, 4.7e-18]  # m³
XY = [[15e-6, 17e-6], [30e-6, 8e-6]]  # m


def export(*, encoding: str = "latin-1", delimiter: str = ";", trailing: bool = True,
           decimal: str = ".", order: list[int] | None = None, after: str = "",
           lineterminator: str = "\r\n", quoting: int = csv.QUOTE_MINIMAL,
           number: Callable[[float], str] = repr) -> bytes:
    """An export as the csv module writes it in Dragonfly's dialect (by default)."""
    order = order or list(range(len(HEADER)))
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter, lineterminator=lineterminator, quoting=quoting)
    end = [""] if trailing else []
    w.writerow([HEADER[k] for k in order] + end)
    for row in ROWS:
        w.writerow([number(row[k]).replace(".", decimal) for k in order] + end)
    return (buf.getvalue() + after).encode(encoding)


def _read(path: Path) -> None:
    g = read_dragonfly(path)
    assert g.labels.tolist() == [1, 2]
    np.testing.assert_allclose(g.volume, VOLUMES, rtol=1e-12)
    np.testing.assert_allclose(g.positions[:, :2], XY, rtol=1e-12)


EXPORTS = {
    "latin-1, ';', CRLF, trailing ';'": export(),
    "UTF-8 with a byte-order mark": export(encoding="utf-8-sig"),
    "UTF-8, LF, no trailing ';'": export(encoding="utf-8", lineterminator="\n", trailing=False),
    "decimal commas": export(decimal=","),
    "columns reversed": export(order=[6, 5, 4, 3, 2, 1, 0]),
    "extra columns, another order": export(order=[3, 0, 4, 1, 5, 2, 6]),
    "empty trailing lines": export(after="\r\n\r\n\r\n"),
    "every cell quoted": export(quoting=csv.QUOTE_ALL),
    "scientific notation": export(number=lambda v: f"{v:E}"),
    "decimal commas, scientific": export(decimal=",", number=lambda v: f"{v:E}"),
    "UTF-16 tabs": export(encoding="utf-16", delimiter="\t", trailing=False),
}


@pytest.mark.parametrize("kind", list(EXPORTS))
def test_exports_as_dragonfly_writes_them(tmp_path, kind):
    path = tmp_path / "cc.csv"
    path.write_bytes(EXPORTS[kind])
    _read(path)


@pytest.mark.parametrize("delimiter", [";", ","])
def test_a_spreadsheets_blank_rows_of_separators_are_blank_lines(tmp_path, delimiter):
    """Excel and LibreOffice save the empty rows below a table as ';;;;;;' (or ',,,,,,'):
    they were read as components with an empty label."""
    path = tmp_path / "cc.csv"
    path.write_bytes(export(delimiter=delimiter, after=delimiter * 7 + "\r\n" + delimiter * 7
                            + "\r\n"))
    _read(path)


def _pandas(delimiter: str) -> bytes:
    frame = pd.DataFrame([dict(zip(HEADER, row, strict=True)) for row in ROWS])
    return frame.to_csv(index=False, sep=delimiter, decimal=",").encode("utf-8")


@pytest.mark.parametrize("writer", [
    lambda: _pandas(","), lambda: _pandas(";"),
    lambda: export(delimiter=",", decimal=",", trailing=False),
], ids=["pandas ','", "pandas ';'", "csv module ','"])
def test_quoted_decimal_commas_in_a_comma_separated_file_are_read(tmp_path, writer):
    """pandas and the csv module quote a decimal comma where ',' separates the cells: the
    quotes say where each cell ends, so the file is read, not refused as split numbers."""
    path = tmp_path / "cc.csv"
    path.write_bytes(writer())
    _read(path)


def test_a_quoted_thousands_separator_among_decimal_points_is_refused_by_cell(tmp_path):
    """'1,234' among decimal points may be a thousand or 1.234: neither reading is taken."""
    path = tmp_path / "cc.csv"
    text = export(delimiter=",", encoding="utf-8").decode().replace(",412,", ',"1,412",')
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=r"cc\.csv, line 2, column 3: 'Voxel count' is '1,412', "
                       "but '3.4e-08' on line 2"):
        read_dragonfly(path)


UM_HEADER = ("Label Index{0}Voxel count{0}Volume (µm³){0}Center Of Mass X (µm){0}"
             "Center Of Mass Y (µm){0}Center Of Mass Z (µm)\n")


@pytest.mark.parametrize("sep", [",", "\t"])
def test_a_comma_that_may_group_thousands_is_refused_where_no_other_settles_it(tmp_path, sep):
    """'1,500' is 1500 to Excel in a decimal-point locale and 1.5 to pandas with decimal=',':
    as the file's only decimal mark it was read as 1.5."""
    path = tmp_path / "cc.csv"
    path.write_text(UM_HEADER.format(sep) + sep.join(["1", "412", '"1,500"', "15", "17", "152"])
                    + "\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"cc\.csv, line 2, column 7: 'Volume \(µm³\)' is "
                       "'1,500', .* it may be 1500 or 1.500"):
        read_dragonfly(path)


@pytest.mark.parametrize(("sep", "x"), [(";", "15"), (",", '"15,5"'), ("\t", "15,5")])
def test_a_comma_that_may_group_thousands_is_decimal_where_the_file_says_so(tmp_path, sep, x):
    """';' separates cells only in decimal-comma locales; elsewhere a comma that groups no
    thousands ('15,5') settles the file's mark."""
    path = tmp_path / "cc.csv"
    path.write_text(UM_HEADER.format(sep) + sep.join(["1", "412", '"1,500"', x, "17", "152"])
                    + "\n", encoding="utf-8")
    np.testing.assert_allclose(read_dragonfly(path).volume, [1.5e-18])


def test_text_after_a_closing_quote_is_part_of_the_cell(tmp_path):
    """The csv module and pandas read '"0,015"x' as '0,015x': it was read as 0.015, the x
    dropped without a word."""
    path = tmp_path / "cc.csv"
    path.write_bytes(export(decimal=",", quoting=csv.QUOTE_ALL).replace(b'"0,015"', b'"0,015"x'))
    with pytest.raises(InputError, match=r"cc\.csv, line 2, column 31: 'Center Of Mass X \(mm\)'"
                       " is '0,015x'; expected a number in mm"):
        read_dragonfly(path)
    path.write_bytes(export(decimal=",", quoting=csv.QUOTE_ALL).replace(b'"0,015"', b'"0,015" '))
    _read(path)  # spaces before the separator are no text


def test_a_bad_export_is_refused_by_the_command_line_which_writes_nothing(tmp_path, capsys,
                                                                       demo_session):
    h5 = demo_session
    grains, out = tmp_path / "cc.csv", tmp_path / "r.csv"
    grains.write_bytes(export(decimal=",").replace(b"0,017", b"0.017"))
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "dragonfly",
                 "--grains", str(grains), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{grains}, line 2, column " in err and "'Center Of Mass Y (mm)' is '0.017'" in err
    assert not out.exists()
