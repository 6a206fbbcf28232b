"""Our own stage, coil and fluxgate drivers over the real byte path: the served emulators'
loopback TCP resources opened through pyvisa's pure-Python backend, on the system clock."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from drivers.fluxgate_dmm import DMMFluxgate
from drivers.kepco_bop import KepcoBOPCoils
from drivers.pi_gcs import PIGCSStage
from drivers.transports import open_transport
from simulators.backend import SimulatedBackend
from smm_daq.clock import SystemClock
from smm_daq.instruments.profile import load_profile

REPO = Path(__file__).resolve().parents[1]


def pure_python(address, link):
    return open_transport(address, link, visa_library="@py")


@contextlib.contextmanager
def served(name: str) -> Iterator[tuple[SimulatedBackend, dict[str, str]]]:
    profile = load_profile(REPO / "configs" / name)
    backend = SimulatedBackend.serving(profile, time_scale=20.0)
    server = backend.serve_tcp()
    try:
        yield backend, server.resources()
    finally:
        server.close()


@pytest.mark.parametrize(("name", "unit"), [("simulator-e727.toml", "\u00b5m"),
                                            ("simulator.toml", "mm")])  # fmt: skip
def test_stage_driver_over_tcp_reads_the_unit_and_moves_in_the_sample_frame(name, unit) -> None:
    with served(name) as (backend, resources):
        s = backend.profile.stage
        settings = replace(s, link=replace(s.link, address=resources[s.link.address]))
        stage = PIGCSStage.from_profile(settings, clock=SystemClock(), open_transport=pure_python)
        try:
            assert stage.snapshot()["units"] == [unit] * 3  # "µm" arrived as 0xB5 0x6D
            lo, hi = stage.limits()[:, 0], stage.limits()[:, 1]
            target = stage.position() + 0.05 * (hi - lo)  # short: the driver waits in real time
            stage.move_to(target[0], target[1])
            np.testing.assert_allclose(stage.position()[:2], target[:2], atol=2e-8)
            np.testing.assert_allclose(
                backend.world.stage.sample_position()[:2], target[:2], atol=2e-8
            )
            stage.set_velocity(2e-5)  # a slow move (minutes simulated), stopped by #24
            stage.move_to(hi[0], target[1], wait=False)
            stage.stop()
            model = backend.world.stage
            assert not any(model.moving(ax) for ax in model.axis_names)
            assert target[0] < model.sample_position()[0] < hi[0]
        finally:
            stage.close()


def test_coil_and_fluxgate_drivers_over_tcp() -> None:
    with served("simulator.toml") as (backend, resources):
        c, f = backend.profile.coils, backend.profile.fluxgate
        coils = KepcoBOPCoils.from_profile(
            replace(c, addresses=tuple(resources[a] for a in c.addresses)),
            clock=SystemClock(), open_transport=pure_python,
        )  # fmt: skip
        fluxgate = DMMFluxgate.from_profile(
            replace(f, link=replace(f.link, address=resources[f.link.address])),
            clock=SystemClock(), open_transport=pure_python,
        )  # fmt: skip
        try:
            field = np.array([0.0, 4e-6, -2e-6])
            coils.set_field(field)
            np.testing.assert_allclose(fluxgate.read_field(), field, atol=60e-9)
            coils.zero()
            assert np.all(np.abs(backend.world.coils.currents()) < 1e-3)
        finally:
            coils.close()
            fluxgate.close()


def test_an_error_query_whose_reply_is_lost_is_not_asked_again() -> None:
    """SYST:ERR? reads and clears the supply's error queue. Its reply lost after the supply
    answered it (held back by the proxy until the retry's device clear reconnects), the error
    is gone from the queue: a re-sent SYST:ERR? would answer 'No error' and the refused
    command would pass as done. The driver sends it once and fails (InstrumentLost)."""
    from fault_proxy import HOST, FaultProxy

    from drivers.kepco_bop import _Supply
    from smm_daq.errors import InstrumentLost

    with served("simulator.toml") as (backend, resources):
        c = backend.profile.coils
        address = c.addresses[0]
        port = int(resources[address].split("::")[2])
        proxy = FaultProxy((HOST, port)).start()
        try:
            link = replace(c.link, address=proxy.resource, retries=2)
            supply = _Supply(pure_python(proxy.resource, link), "x", link.retries)
            try:
                supply.query("*IDN?", str)  # answered: the proxy has counted it
                seen = proxy.commands
                proxy.hold()  # SYST:ERR?'s reply, after the supply cleared its queue, is lost
                proxy.after(seen + 3, proxy.restore)  # a re-sent SYST:ERR? would be answered
                with pytest.raises(InstrumentLost, match="SYST:ERR"):
                    supply.command("CURR 99")  # refused by the supply: -222, out of range
                assert proxy.commands == seen + 2  # CURR and one SYST:ERR?, never re-sent
            finally:
                supply.link.close()
        finally:
            proxy.close()


def test_an_error_an_earlier_program_left_in_the_multimeter_is_reported_not_ours() -> None:
    """Another program leaves the 34970A with a refused channel list queued (-222). Our driver
    connecting over TCP reads the queue before its first command: the connect passes (the
    error is not taken for ours) and the snapshot says what was found."""
    import pyvisa

    with served("simulator.toml") as (backend, resources):
        f = backend.profile.fluxgate
        resource = resources[f.link.address]
        manager = pyvisa.ResourceManager("@py")
        try:
            other = manager.open_resource(resource, read_termination="\n",
                                          write_termination="\n", timeout=5000)  # fmt: skip
            other.write("CONF:VOLT:DC 10,DEF,(@1,2,3)")  # not how a 34970A numbers channels
            assert other.query("*OPC?") == "1"  # taken before the program ends
            other.close()
        finally:
            manager.close()
        fluxgate = DMMFluxgate.from_profile(
            replace(f, link=replace(f.link, address=resource)),
            clock=SystemClock(), open_transport=pure_python,
        )  # fmt: skip
        try:
            assert fluxgate.errors_at_connect == ["-222 Data out of range"]
            assert fluxgate.snapshot()["errors_at_connect"] == "-222 Data out of range"
            assert fluxgate.read_errors() == []  # cleared at connect
        finally:
            fluxgate.close()
