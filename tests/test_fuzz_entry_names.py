"""Fuzzing the options that name an entry to read with a name that is no UTF-8 text, which the
other fuzz tests leave out: a byte such as 0xFF typed in a Latin-1 terminal reaches Python's
argv as a lone surrogate ('\\udcff'), which h5py cannot encode (a UnicodeEncodeError from deep
in the file's lookup). Every such option must refuse it with one message naming the option,
exit 2, no traceback, the file unchanged and nothing written.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fuzz_harness import Case, run_all

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

N = 12
X = np.arange(N) * 10e-6
NOT_UTF8 = b"\xffscan".decode("utf-8", "surrogateescape")  # as Python decodes such an argv


def test_an_entry_name_that_is_no_utf8_text_is_refused_naming_the_option(tmp_path: Path) -> None:
    path = tmp_path / "s.h5"
    bz = 1e-6 * np.exp(-((X[None, :] - 55e-6) ** 2 + (X[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(path, MapData(bz, X, X, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.zeros(3), name="ok"), kind="scan")
    grains = tmp_path / "grains.csv"
    grains.write_text("grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,55,55,-10,8,8,8\n")
    csv, result = tmp_path / "x.csv", tmp_path / "r.csv"
    s = str(path)
    commands = {
        "export": (["export", s, "--entry", NOT_UTF8, "--csv", str(csv)], "--entry"),
        "background": (["background", s, "--entry", NOT_UTF8, "--name", "new",
                        "--border-um", "20"], "--entry"),
        "subtract": (["subtract", s, "--in-field", "ok", "--remanent", NOT_UTF8, "--name",
                      "new"], "--remanent"),
        "mmt invert": (["mmt", "invert", s, "--entry", NOT_UTF8, "--grains", str(grains),
                        "--out", str(result)], "--entry"),
        "resume": (["resume", s, "--entry", NOT_UTF8], "--entry"),
        "noise": (["noise", s, "--entry", "ok", "--repeat", NOT_UTF8, "--border-um", "20"],
                  "--repeat"),
    }
    cases = [Case("entry name", command, argv, [path, grains], [csv, result],
                  [option, "UTF-8"]) for command, (argv, option) in commands.items()]
    counts, failures = run_all(cases)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)
