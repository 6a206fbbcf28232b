"""The SCPI emulators (Kepco BOP, 34970A) answer any malformed command with an error-queue
entry, never an exception (which would drop a TCP client's connection)."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.coil_model import CoilModel
from simulators.dmm_emulator import DMMEmulator
from simulators.kepco_emulator import KepcoBOPEmulator
from smm_daq.clock import VirtualClock

HEADERS = ["*IDN?", "*RST", "*CLS", "*OPC", "*OPC?", "*WAI", "*TST?", "*OPT?", "*ESR?", "*ESE",
           "*ESE?", "*SRE", "*SRE?", "*STB?", "FUNC:MODE", "FUNC:MODE?", "CURR", "CURR?", "VOLT",
           "VOLT?", "MEAS:CURR?", "MEAS:VOLT?", "OUTP", "OUTP?", "SYST:ERR?", "SYST:BEEP",
           "CONF:VOLT:DC", "CONF?", "ROUT:SCAN", "ROUT:SCAN?", "INIT", "FETC?", "READ?",
           "MEAS:VOLT:DC?", "VOLT:DC:NPLC", "VOLT:DC:NPLC?", "FORM:READ:CHAN", "FORM:READ:TIME?",
           "::", "?", "CURR:LEV:IMM:FOO"]  # fmt: skip
ARGS = ["", "x", "1e400", "nan", "-1e400", "(@", "(@1:)", "(@101:99999)", "(@340:101)",
        "10,DEF,(@101)", "MIN", "MAX", "ON", "2", "\"q\"", "1,2,3,4,(@101)"]  # fmt: skip


@pytest.mark.parametrize("kind", ["kepco", "dmm"])
def test_no_malformed_command_raises(kind: str) -> None:
    clock = VirtualClock()
    if kind == "kepco":
        emulator = KepcoBOPEmulator(CoilModel(clock, calibration=np.eye(3) * 5e-5), 0)
    else:
        emulator = DMMEmulator(lambda now: np.zeros(3), clock.now, (101, 102, 103))
    for header in HEADERS:
        for arg in ARGS:
            emulator.handle(f"{header} {arg}".strip())
    assert emulator.handle("SYST:ERR?") not in (None, "")
