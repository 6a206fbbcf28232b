"""An export that runs out of room (a full disk, a quota, a file size limit) leaves no file cut
short: a new export is not there at all, and the file an --overwrite was to replace is as it
was. Each output kind of `smm-daq export` is checked (CSV, PNG picture, mask template).

The limit is real: RLIMIT_FSIZE makes the file system refuse a write past that many bytes
(Python ignores the SIGXFSZ it would send), as a full disk refuses one.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from full_disk import file_size_limit

from smm_daq.cli.main import main

LIMIT = 400  # bytes: each export of the demo scan (16 × 20 sensors) is larger (the mask
# template, a pixel a sensor, the smallest: 632 bytes)
OUTPUTS = ("--csv", "--png", "--mask-template")


def _export(session: Path, option: str, out: Path, *extra: str) -> int:
    return main(["export", str(session), "--entry", "qdm", option, str(out), *extra])


@pytest.mark.parametrize("option", ("--csv", "--mask-template"))  # a new PNG was never left
def test_an_export_without_room_leaves_no_file_cut_short(
        demo_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        option: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / ("map.csv" if option == "--csv" else "map.png")
    with file_size_limit(LIMIT):
        code = _export(demo_session, option, out)
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"cannot write {out}" in err and "Traceback" not in err
    assert list(folder.iterdir()) == []  # neither the export cut short nor a scratch file


@pytest.mark.parametrize("option", OUTPUTS)
def test_an_overwrite_without_room_keeps_the_file_it_was_to_replace(
        demo_session: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        option: str) -> None:
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / ("map.csv" if option == "--csv" else "map.png")
    assert _export(demo_session, option, out) == 0
    whole = out.read_bytes()
    assert len(whole) > LIMIT
    with file_size_limit(LIMIT):
        code = _export(demo_session, option, out, "--overwrite")
    err = capsys.readouterr().err
    assert code == 2, err
    assert out.read_bytes() == whole
    assert list(folder.iterdir()) == [out]
    out.chmod(0o640)  # with room, it is replaced, keeping its permissions
    assert _export(demo_session, option, out, "--overwrite") == 0
    assert out.stat().st_mode & 0o777 == 0o640
    assert list(folder.iterdir()) == [out]
