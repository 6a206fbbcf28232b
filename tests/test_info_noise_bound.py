"""`smm-daq info` prints a map's noise floor as an upper bound where its field bends at the
pixel scale (it reads several times the noise there, and no one map tells better), with the
command that measures it from a repeated scan; a map whose floor is the noise's, plainly."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry
from tests.test_maps_processing import dense_dipoles_bz

UM = 1e-6


def test_info_says_an_upper_bound_only_where_the_field_bends_at_the_pixel_scale(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "s.h5"
    rng = np.random.default_rng(2)
    x = y = np.arange(40) * 2 * UM
    sigma = 1e-10
    for name, field in (("dense", dense_dipoles_bz(40, per_pixel=0.3, seed=4)),
                        ("quiet", np.zeros((40, 40)))):
        write_map_entry(path, MapData(bz=field + rng.normal(0, sigma, field.shape), x=x, y=y,
                                      height=1 * UM, sensor_size=(0.0, 0.0), name=name),
                        kind="import")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    dense, note, quiet = out.splitlines()[1:]
    floor = dense.split("noise floor ≤ ")[1].split(" µT")[0]
    assert float(floor) * UM > 2.5 * sigma
    assert "µT (may read high: the field bends at the pixel scale)" in dense
    assert note == (f"    a repeated scan measures its noise: smm-daq noise {path} --entry "
                    "dense --repeat REPEAT")
    assert "≤" not in quiet and "may read high" not in quiet
    assert float(quiet.split("noise floor ")[1].split(" µT")[0]) * UM == pytest.approx(sigma,
                                                                                   rel=0.2)


def test_the_command_info_advises_acts_on_a_file_named_in_no_utf8(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A session file named with a byte that is not UTF-8 (a Latin-1 terminal's é): the
    command `info` advises under its map, pasted into bash, names that very file (it was
    quoted with Python's stand-in for the byte, which the console writes as '?'); the file
    on `info`'s first line, and an external link's file, are named as bash gives the byte
    back too (unfixed, as Python's stand-in: '...caf\\udce9 1.h5', and the raw byte)."""
    from tests.test_shell_words_dash import bash_words

    raw = os.fsencode(tmp_path) + b"/caf\xe9 1.h5"
    try:
        open(raw, "wb").close()
        os.remove(raw)
    except OSError:
        pytest.skip("this file system refuses a name that is not UTF-8")
    path = os.fsdecode(raw)
    x = np.arange(24) * 2 * UM
    write_map_entry(path, MapData(bz=dense_dipoles_bz(24, per_pixel=0.3, seed=4), x=x, y=x,
                                  height=1 * UM, sensor_size=(0.0, 0.0), name="dense"),
                    kind="import")
    with h5py.File(path, "a") as f:
        f["link"] = h5py.ExternalLink(os.fsdecode(b"other \xe9.h5"), "/dense")
    assert main(["info", path]) == 0
    first, _, note, link = capsys.readouterr().out.splitlines()
    assert first == f"$'{tmp_path}/caf\\xe9 1.h5': 1 entry"
    assert link == ("  not an entry: 'link' is an external link to '/dense' in $'other "
                    "\\xe9.h5', not an entry")
    command = note.split(": ", 1)[1].removesuffix(" REPEAT")
    assert command.isascii(), command
    assert bash_words(command) == [b"noise", raw, b"--entry", b"dense", b"--repeat"]
