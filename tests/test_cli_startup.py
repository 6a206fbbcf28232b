"""Every `smm-daq` command builds the whole parser first, so building it must not import the
heavy libraries that only some commands need (each adds tenths of a second to every start).
Checked on the import graph in a fresh interpreter, never on the time."""

from __future__ import annotations

import json
import os
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


_END = """
import gc, json, os, sys
{before}
from smm_daq.cli.main import main
assert "numpy" not in sys.modules  # the OpenBLAS setting comes before NumPy loads it
sys.argv = ["smm-daq", *{argv!r}]
code = main({call})
print(json.dumps([code, gc.get_freeze_count(), os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
                  os.environ.get("OMP_WAIT_POLICY")]))
"""


def _end_of(argv: list[str], *, as_program: bool, before: str = "") -> list:
    call = "" if as_program else repr(argv)
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", _END.format(before=before, argv=argv, call=call)],
        capture_output=True, text=True, check=True, env=env)
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_program_leaves_its_objects_to_the_process_end(tmp_path):
    """Run as the program (argv None), a command that succeeded freezes the collector's
    objects, so the interpreter's last collection skips them; called with an argv (tests,
    scripts that go on), it leaves the collector alone."""
    import h5py

    path = tmp_path / "s.h5"
    h5py.File(path, "w").close()  # a file of no entries: `info` succeeds
    code, frozen, *_ = _end_of(["info", str(path)], as_program=True)
    assert code == 0 and frozen > 1000
    code, frozen, *_ = _end_of(["info", str(path)], as_program=False)
    assert code == 0 and frozen == 0
    code, frozen, *_ = _end_of(["info", str(tmp_path / "none.h5")], as_program=True)
    assert code == 2 and frozen == 0  # an error is reported as before, nothing frozen


def test_openblas_threads_stop_spinning_sooner_unless_the_user_says_otherwise(tmp_path):
    """The command sets OPENBLAS_THREAD_TIMEOUT before NumPy loads (its threads otherwise spin
    between LAPACK calls while numba's kernels need the cores); a user's value is kept."""
    path = tmp_path / "none.h5"
    assert _end_of(["info", str(path)], as_program=True)[2] == "20"
    kept = _end_of(["info", str(path)], as_program=True,
                   before="os.environ['OPENBLAS_THREAD_TIMEOUT'] = '7'")
    assert kept[2] == "7"


def test_openmp_threads_sleep_when_idle_unless_the_user_says_otherwise(tmp_path):
    """The command has numba's OpenMP threads sleep as soon as a kernel ends (they spun some
    10 ms after each, taking a core from the QR's LAPACK threads, other processes and, on a
    loaded machine, the next kernel); the user's own OMP_WAIT_POLICY or GOMP_SPINCOUNT
    (which libgomp takes before the policy) is kept."""
    path = tmp_path / "none.h5"
    assert _end_of(["info", str(path)], as_program=True)[3] == "PASSIVE"
    kept = _end_of(["info", str(path)], as_program=True,
                   before="os.environ['OMP_WAIT_POLICY'] = 'ACTIVE'")
    assert kept[3] == "ACTIVE"
    spin = _end_of(["info", str(path)], as_program=True,
                   before="os.environ['GOMP_SPINCOUNT'] = '1000'")
    assert spin[3] is None


def test_python_dash_m_runs_the_command():
    """`python -m smm_daq` is the command where the `smm-daq` script is not on the PATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
         os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "smm_daq", "info", "no-such.h5"],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 2 and "no-such.h5: file not found" in done.stderr
