"""Every `smm-daq` command builds the whole parser first, so building it must not import the
heavy libraries that only some commands need (each adds tenths of a second to every start).
Checked on the import graph in a fresh interpreter, never on the time."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("matplotlib", "dask", "distributed", "numba", "PyQt6", "pyqtgraph", "scipy", "h5py",
         "pyvisa", "serial")

_PROBE = """
import json, sys
from smm_daq.cli.main import build_parser
parser = build_parser()
for argv in {argvs!r}:
    try:
        parser.parse_args(argv)
    except SystemExit:
        pass
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}})))
"""


def _modules_after(*argvs: list[str]) -> set[str]:
    done = subprocess.run([sys.executable, "-c", _PROBE.format(argvs=list(argvs))],
                          capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_building_the_parser_imports_no_heavy_library():
    loaded = _modules_after()
    assert "smm_daq" in loaded  # the probe did build the parser
    assert sorted(loaded & set(HEAVY)) == []


def test_parsing_any_command_line_imports_no_heavy_library():
    loaded = _modules_after(
        ["mmt", "invert", "f.h5", "--entry", "e", "--grains", "g.csv", "--out", "r.csv"],
        ["mmt", "study", "--out", "d"],
        ["scan", "--center-um", "0,0", "--size-um", "1,1", "--step-um", "1", "--name", "a",
         "--out", "f.h5"],
        ["gui"],
        ["--help"],
    )
    assert sorted(loaded & set(HEAVY)) == []
