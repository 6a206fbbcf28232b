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
