"""Other people's clients drive the served Kepco BOP supplies and 34970A over loopback TCP.

PyMeasure's `KepcoBOP3612` (unmodified) sets and reads back every control it has, in both
modes, with its status and error queue. Neither PyMeasure nor QCoDeS has a 34970A driver, so
the multimeter is driven the way its users script it, SCPI through pyvisa's pure-Python
backend. The physical cross-check: a current set through PyMeasure shows on the fluxgate
channels as calibration × current / fluxgate scale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import pyvisa

pymeasure = pytest.importorskip("pymeasure")
from pymeasure.instruments.kepco import KepcoBOP3612  # noqa: E402

from simulators.backend import SimulatedBackend  # noqa: E402
from smm_daq.instruments.profile import parse_profile  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "simulator.toml"
TIME_SCALE = 50.0


@contextlib.contextmanager
def served() -> Iterator[tuple[SimulatedBackend, dict[str, str]]]:
    """The simulator with BOP 36-12M supplies (the model PyMeasure's class is written for)."""
    text = PROFILE.read_text(encoding="utf-8").replace(
        'stage_controller = "C-884"', 'stage_controller = "C-884"\nsupply_model = "BOP 36-12M"'
    ).replace("supply_rating_A = 5.0", "supply_rating_A = 12.0")
    profile = parse_profile(text, PROFILE)
    backend = SimulatedBackend.serving(profile, time_scale=TIME_SCALE)
    server = backend.serve_tcp()
    try:
        resources = server.resources()
        yield backend, {role: resources[a] for role, a in backend.addresses().items()}
    finally:
        server.close()


@pytest.fixture(scope="module")
def rig() -> Iterator[tuple[SimulatedBackend, dict[str, str]]]:
    with served() as found:
        yield found


def bop(resource: str) -> KepcoBOP3612:
    return KepcoBOP3612(resource, visa_library="@py", timeout=5000)


def settle(supply: KepcoBOP3612, amps: float) -> float:
    """Read the output current until the supply's slew has carried it to `amps` (bounded)."""
    for _ in range(200):
        measured = supply.current
        if measured == pytest.approx(amps, abs=1e-3):
            return measured
    raise AssertionError(f"current stayed at {measured} A, set to {amps} A")


def test_pymeasure_kepco_identity_status_and_every_control_read_back(rig) -> None:
    _, resources = rig
    supply = bop(resources["coil_x"])
    try:
        assert supply.id.startswith("KEPCO,BOP 36-12M,")
        supply.reset()
        supply.clear()
        assert supply.complete == "1"  # *OPC?
        assert int(supply.status) == 0  # *STB?: nothing queued
        assert supply.options == "0"
        assert int(supply.confidence_test) == 0  # *TST?
        assert supply.operating_mode == "VOLT"  # after *RST
        supply.operating_mode = "CURR"
        assert supply.operating_mode == "CURR"
        supply.voltage_setpoint = 10.0  # the compliance in current mode
        supply.current_setpoint = -1.25
        assert supply.voltage_setpoint == pytest.approx(10.0)
        assert supply.current_setpoint == pytest.approx(-1.25)
        supply.output_enabled = True
        assert supply.output_enabled is True
        assert settle(supply, -1.25) == pytest.approx(-1.25, abs=1e-3)
        assert supply.voltage == pytest.approx(-1.25 * 2.0, abs=1e-2)  # the 2 Ω coil
        supply.wait_to_continue()  # *WAI
        supply.beep()
        assert supply.check_errors() == []
        supply.write("CURR 13")  # beyond the ±12 A rating (PyMeasure's validator would clip)
        assert int(supply.status) & 4  # an error is queued
        code, text = supply.next_error
        assert int(code) == -222 and text.strip('"') == "Data out of range"
        supply.output_enabled = False
    finally:
        supply.adapter.close()


def test_pymeasure_kepco_voltage_mode_drives_v_over_r_within_the_current_limit(rig) -> None:
    _, resources = rig
    supply = bop(resources["coil_y"])
    try:
        supply.reset()
        supply.operating_mode = "VOLT"
        supply.current_setpoint = 1.0  # the current limit in voltage mode
        supply.voltage_setpoint = -1.0  # -0.5 A into 2 Ω
        supply.output_enabled = True
        assert settle(supply, -0.5) == pytest.approx(-0.5, abs=1e-3)
        supply.voltage_setpoint = 5.0  # 2.5 A wanted: the limit holds 1 A
        assert settle(supply, 1.0) == pytest.approx(1.0, abs=1e-3)
        supply.output_enabled = False
    finally:
        supply.adapter.close()


def test_pymeasure_kepco_reads_back_a_negative_current_limit_as_programmed(rig) -> None:
    """In voltage mode CURR sets the current limit, ±|CURR| around zero; CURR? returns the
    value as programmed (the BOP manuals: "returns the programmed current ... or current limit
    (Voltage mode)"), as VOLT? returns a negative compliance in current mode."""
    _, resources = rig
    supply = bop(resources["coil_y"])
    try:
        supply.reset()
        supply.clear()
        supply.operating_mode = "VOLT"
        supply.current_setpoint = -1.0  # the limit: ±1 A
        assert supply.current_setpoint == pytest.approx(-1.0)
        supply.voltage_setpoint = 5.0  # 2.5 A wanted into 2 Ω: the limit holds 1 A
        supply.output_enabled = True
        assert settle(supply, 1.0) == pytest.approx(1.0, abs=1e-3)
        supply.operating_mode = "CURR"
        supply.voltage_setpoint = -8.0  # the compliance in current mode, ±8 V
        assert supply.voltage_setpoint == pytest.approx(-8.0)
        assert supply.check_errors() == []
        supply.output_enabled = False
    finally:
        supply.adapter.close()


def test_a_coil_current_shows_on_the_fluxgate_channels(rig) -> None:
    backend, resources = rig
    supply = bop(resources["coil_z"])
    manager = pyvisa.ResourceManager("@py")
    try:
        dmm = manager.open_resource(resources["fluxgate"], read_termination="\n",
                                    write_termination="\n", timeout=5000)  # fmt: skip
        dmm.write("*RST;*CLS")
        dmm.write("CONF:VOLT:DC 10,DEF,(@101:103)")
        assert dmm.query("ROUT:SCAN?") == "#214(@101,102,103)"
        before = np.array(dmm.query("READ?").split(","), dtype=float)
        supply.reset()
        supply.operating_mode = "CURR"
        supply.voltage_setpoint = 20.0
        supply.current_setpoint = 0.8
        supply.output_enabled = True
        settle(supply, 0.8)
        dmm.write("INIT")
        after = np.array(dmm.query("FETC?").split(","), dtype=float)
        # the true coil matrix (T/A) of the z coil, through the fluxgate's nominal scale (T/V)
        column = backend.world.coils.calibration[:, 2]
        expected = np.linalg.solve(backend.profile.fluxgate.scale, column * 0.8)
        np.testing.assert_allclose(after - before, expected, atol=2e-3)  # 2 mV: 20 nT
        assert abs(after[2] - before[2]) > 3.0  # 40 µT: 4 V on the z channel
        dmm.write("CONF:VOLT:DC 10,DEF,(@1,2,3)")  # not how a 34970A numbers channels
        assert dmm.query("SYST:ERR?") == '-222,"Data out of range"'
        dmm.write("FORM:READ:CHAN ON")
        values = dmm.query("READ?").split(",")
        assert values[1::2] == ["101", "102", "103"]
        assert dmm.query("*OPC?") == "1"
        supply.output_enabled = False
    finally:
        supply.adapter.close()
        manager.close()
