"""Windows and macOS, simulated on Linux: what those systems lack is taken away (a signal, a
call), or what they do is imitated (a cp1252 console), and the command line must still work."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py

_WINDOWS_SIGNALS = """
import json, signal, sys
del signal.SIGHUP, signal.pthread_sigmask  # as on Windows
signal.SIGBREAK = signal.SIGUSR1  # Windows' Ctrl-Break, played by a signal Linux has
from smm_daq import interrupts
from smm_daq.cli.main import main
sys.argv = ["smm-daq", "info", sys.argv[1]]
code = main()  # as the program: at its end, late signals are ignored, not blocked
late = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGBREAK)
signal.raise_signal(signal.SIGINT)  # ignored: no traceback, no death by signal
print(json.dumps([code, [s.name for s in interrupts.SIGNALS], [h == signal.SIG_IGN for h in late]]))
"""


def test_the_command_line_runs_where_there_is_no_sighup_and_no_signal_mask(tmp_path: Path):
    path = tmp_path / "s.h5"
    h5py.File(path, "w").close()  # a file of no entries: `info` succeeds
    done = subprocess.run([sys.executable, "-c", _WINDOWS_SIGNALS, str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    code, routed, ignored = json.loads(done.stdout.strip().splitlines()[-1])
    assert code == 0
    assert routed == ["SIGINT", "SIGTERM", "SIGUSR1"]  # SIGBREAK stopped a scan too
    assert ignored == [True, True]
