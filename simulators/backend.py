"""The simulator backend: one World from a profile, one protocol emulator per address.

`SimulatedBackend(profile, clock, world_options)` reads the profile's [simulation] table
(every key optional; each error names the file and key), builds the stage and coil models, the
sensor, the fluxgate and the sample into one `World`, and an emulator for each instrument
address. `open_transport(address, link)` is what the rig hands to the drivers: an in-process
`EmulatorTransport` with that address' `faults` (timeouts, garbage, disconnects), so the real
drivers run unchanged. `SimulatedBackend.serving(profile, time_scale=...)` builds one whose
world runs in scaled real time, and `serve_tcp()` serves every emulator on its own loopback
port (`smm-daq serve-sim`).

[simulation] keys (units in the names; defaults make a world that agrees with the profile):
    seed                        random seed of the rig's make-up: the coils' and fluxgate's
                                errors, the same in every session (0)
    noise_seed                  random seed of the noise; without it every connection draws
                                fresh noise (`simulators.noise_seeds`)
    sample                      "builtin" (the demo sample) or "empty"
    sample_offset_um            where the sample sits relative to the stage origin ([0, 0])
    noise_uT_rms                MTJ white noise in one reading at the profile's time
                                constant and 12 dB/oct (0.25)
    drift_uT_per_hour           MTJ zero drift (0)
    sensor_offset_V             true MTJ offset at the lock-in input (the profile's offset_V)
    ambient_field_uT            true field with the coils off (the profile's coil ambient)
    ambient_drift_nT_per_hour   how that field drifts on the rig clock ([0, 0, 0])
    coil_matrix_error           relative SD of the true coil matrix' errors (0)
    supply_resolution_mA        current setpoint resolution of the supplies (0.1)
    supply_slew_A_per_s         how fast a supply's current follows its setpoint (10)
    fluxgate_scale_error        relative SD of each fluxgate output's gain error (0)
    fluxgate_orthogonality_deg  SD of each fluxgate axis' tilt (0)
    fluxgate_offset_nT          fluxgate offset errors ([0, 0, 0])
    fluxgate_noise_nT_rms       fluxgate noise per reading (0)
    disconnected                addresses whose link is dead from the start ([])
    stage_controller            the PI controller emulated: "C-884" (a motor controller in mm,
                                axes referenced before they move) or "E-727" (a piezo
                                controller in µm, flexure stages of at most 2 mm) ("C-884")
    stage_travel_um             the stage's own travel, sample frame (the profile's travel_um)
    supply_model                the coil supplies on their label, "BOP <volts>-<amps>[suffix]":
                                their rating, answered in *IDN? ("BOP 20-5M")
    bus_latency_ms              rig-clock time each message takes to reach an instrument (0)
    bus_bytes_per_s             throughput of the replies, 0 for instant (0)
`world_options` overrides these with SI values under the `SimulationOptions` field names, e.g.
{"sample": VirtualSample(...), "noise_rms": 0.0}.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from simulators.coil_model import CoilModel
from simulators.dmm_emulator import DMMEmulator
from simulators.emulator import Emulator, EmulatorTransport, Faults
from simulators.kepco_emulator import KepcoBOPEmulator
from simulators.kepco_emulator import rating as supply_rating
from simulators.lockin_emulator import SRSLockInEmulator
from simulators.noise_seeds import NoiseKey, NoiseSeeds
from simulators.pi_emulator import CONTROLLERS, Controller, PIGCSEmulator
from simulators.sample import VirtualSample
from simulators.sensor_model import FluxgateModel, MTJSensor, enbw
from simulators.sr830_emulator import SR830Emulator
from simulators.sr860_emulator import SR860Emulator
from simulators.stage_model import StageModel
from simulators.tcp_server import EmulatorServer, RealTimeClock
from simulators.world import World
from smm_daq.clock import Clock
from smm_daq.errors import InputError, InstrumentLost
from smm_daq.instruments.profile import CoilSettings, LinkSettings, Profile, _Reader

UM, UT, NT = 1e-6, 1e-6, 1e-9
_LOCKINS: dict[str, type[SRSLockInEmulator]] = {"sr830": SR830Emulator, "sr860": SR860Emulator}
_EMULATED = {
    "lockin": tuple(_LOCKINS),
    "stage": ("pi_gcs",),
    "coils": ("kepco_bop",),
    "fluxgate": ("dmm_fluxgate",),
}


def _nominal_coils(profile: Profile) -> CoilSettings:
    """The coils as the profile writes them: the simulated truth must not follow a calibration."""
    return profile.coils_as_written or profile.coils


@dataclass(frozen=True)
class SimulationOptions:
    """What the simulated world is made of, in SI units."""

    seed: int = 0
    noise_seed: int | None = None  # None: fresh noise (see `simulators.noise_seeds`)
    sample: VirtualSample | None = None  # None: the builtin demo sample
    sample_offset: np.ndarray = field(default_factory=lambda: np.zeros(2))
    noise_rms: float = 0.25 * UT
    drift_rate: float = 0.0  # T/s
    sensor_offset: float | None = None  # V; None: the profile's sensor offset
    ambient_field: np.ndarray | None = None  # T; None: the profile's coil ambient field
    ambient_drift: np.ndarray = field(default_factory=lambda: np.zeros(3))  # T/s
    coil_matrix_error: float = 0.0
    supply_resolution: float = 1e-4  # A
    supply_slew_rate: float = 10.0  # A/s
    fluxgate_scale_error: float = 0.0
    fluxgate_orthogonality_error: float = 0.0  # rad
    fluxgate_offset_error: np.ndarray = field(default_factory=lambda: np.zeros(3))  # T
    fluxgate_noise_rms: float = 0.0  # T
    disconnected: tuple[str, ...] = ()
    stage_controller: Controller = CONTROLLERS["C-884"]
    stage_travel: np.ndarray | None = None  # (3, 2) m, sample frame; None: the profile's
    supply_model: str = "BOP 20-5M"
    bus_latency: float = 0.0  # s per message
    bus_bytes_per_s: float = 0.0  # reply throughput; 0: instant

    @classmethod
    def from_profile(cls, profile: Profile) -> SimulationOptions:
        """Read and check the profile's [simulation] table."""
        r = _Reader(str(profile.path), profile.simulation, "simulation.")
        seed = r.integer("seed", 0, lo=0, hi=2**63 - 1)
        noise_seed = (r.integer("noise_seed", lo=0, hi=2**63 - 1)
                      if "noise_seed" in profile.simulation else None)
        sample_name = r.string("sample", "builtin", choices=("builtin", "empty"))
        addresses = _addresses(profile)
        disconnected = r._get("disconnected", [])
        if not isinstance(disconnected, list) or any(a not in addresses for a in disconnected):
            raise r.fail(
                "disconnected",
                disconnected,
                "a list of the profile's instrument addresses (" + ", ".join(addresses) + ")",
            )
        options = cls(
            seed=seed,
            noise_seed=noise_seed,
            sample=VirtualSample.empty() if sample_name == "empty" else None,
            sample_offset=r.array("sample_offset_um", (2,), [0.0, 0.0], limit=1e6,
                                  unit=" µm") * UM,
            noise_rms=r.number("noise_uT_rms", 0.25, lo=0.0, hi=1e3, unit=" µT") * UT,
            drift_rate=r.number("drift_uT_per_hour", 0.0, lo=-1e3, hi=1e3, unit=" µT/h")
            * UT / 3600.0,
            sensor_offset=r.number("sensor_offset_V", profile.sensor.offset_V, lo=-10.0, hi=10.0,
                                   unit=" V"),
            ambient_field=r.array(
                "ambient_field_uT", (3,), (_nominal_coils(profile).ambient_field / UT).tolist(),
                limit=1e3, unit=" µT")
            * UT,
            ambient_drift=r.array("ambient_drift_nT_per_hour", (3,), [0.0, 0.0, 0.0],
                                  limit=1e6, unit=" nT/h") * NT / 3600.0,
            coil_matrix_error=r.number("coil_matrix_error", 0.0, lo=0.0, hi=0.5),
            supply_resolution=r.number("supply_resolution_mA", 0.1, positive=True, hi=1e3,
                                       unit=" mA") * 1e-3,
            supply_slew_rate=r.number("supply_slew_A_per_s", 10.0, positive=True, hi=1e4,
                                      unit=" A/s"),
            fluxgate_scale_error=r.number("fluxgate_scale_error", 0.0, lo=0.0, hi=0.5),
            fluxgate_orthogonality_error=math.radians(
                r.number("fluxgate_orthogonality_deg", 0.0, lo=0.0, hi=10.0)
            ),
            fluxgate_offset_error=r.array("fluxgate_offset_nT", (3,), [0.0, 0.0, 0.0], limit=1e6,
                                          unit=" nT") * NT,
            fluxgate_noise_rms=r.number("fluxgate_noise_nT_rms", 0.0, lo=0.0, hi=1e6,
                                        unit=" nT") * NT,
            disconnected=tuple(disconnected),
            stage_controller=CONTROLLERS[
                r.string("stage_controller", "C-884", choices=tuple(CONTROLLERS))
            ],
            supply_model=r.string("supply_model", "BOP 20-5M"),
            bus_latency=r.number("bus_latency_ms", 0.0, lo=0.0) * 1e-3,
            bus_bytes_per_s=r.number("bus_bytes_per_s", 0.0, lo=0.0),
            stage_travel=(
                r.array("stage_travel_um", (3, 2)) * UM
                if "stage_travel_um" in profile.simulation
                else None
            ),
        )
        r.check_unknown()
        try:
            rated = supply_rating(options.supply_model)[1]
        except ValueError:
            raise r.fail("supply_model", options.supply_model, "a Kepco model such as "
                         "'BOP 20-5M' (± volts - ± amps)") from None  # fmt: skip
        if rated > profile.coils.supply_rating:  # the bound on making safe counts on it
            raise r.fail("supply_model", options.supply_model,
                         f"a supply rated at most coils.supply_rating_A "
                         f"({profile.coils.supply_rating:g} A)")
        travel = profile.stage.travel if options.stage_travel is None else options.stage_travel
        key = "stage.travel_um" if options.stage_travel is None else "simulation.stage_travel_um"
        if np.any(travel[:, 1] <= travel[:, 0]):
            raise r.fail("stage_travel_um", (travel / UM).tolist(), "[min, max] with min < max")
        controller = options.stage_controller
        if np.any(travel[:, 1] - travel[:, 0] > controller.max_travel * (1 + 1e-9)):
            raise InputError(
                f"key '{key}' is {(travel / UM).tolist()} µm, but an emulated "
                f"{controller.model} drives stages of at most {controller.max_travel / UM:g} µm "
                "travel per axis; choose another simulation.stage_controller or less travel",
                source=str(profile.path),
            )
        return options

    def updated(self, world_options: dict[str, Any] | None) -> SimulationOptions:
        """These options with `world_options` (SI, field names) laid over them."""
        if not world_options:
            return self
        known = {f.name for f in fields(self)}
        unknown = sorted(set(world_options) - known)
        if unknown:
            raise InputError(
                f"unknown world option {unknown[0]!r}; expected one of " + ", ".join(sorted(known))
            )
        return replace(self, **world_options)


def _addresses(profile: Profile) -> list[str]:
    return [address for _key, address in _keyed_addresses(profile)]


def _keyed_addresses(profile: Profile) -> list[tuple[str, str]]:
    """(profile key, address) of every instrument, in `_addresses`' order."""
    out = [("lockin.address", profile.lockin.link.address),
           ("stage.address", profile.stage.link.address),
           *((f"coils.addresses[{k}]", a) for k, a in enumerate(profile.coils.addresses))]
    if profile.fluxgate is not None:
        out.append(("fluxgate.address", profile.fluxgate.link.address))
    return out


def _check_emulated(profile: Profile) -> None:
    chosen = {
        "lockin": profile.lockin.link.implementation,
        "stage": profile.stage.link.implementation,
        "coils": profile.coils.link.implementation,
    }
    if profile.fluxgate is not None:
        chosen["fluxgate"] = profile.fluxgate.link.implementation
    for key, name in chosen.items():
        if name not in _EMULATED[key]:
            raise InputError(
                f"key '{key}.implementation' is {name!r}, which the simulator does not emulate;"
                " expected one of " + ", ".join(repr(n) for n in _EMULATED[key]),
                source=str(profile.path),
            )
    first: dict[str, str] = {}
    for key, address in _keyed_addresses(profile):
        other = first.setdefault(address, key)
        if other != key:
            raise InputError(
                f"key '{key}' is {address!r}, the address of '{other}' too: it is given to "
                "more than one instrument; expected each instrument at an address of its own",
                source=str(profile.path),
            )


class WorldSynced(Emulator):
    """An emulator whose every command first brings the world up to the present, under its lock."""

    def __init__(self, inner: Emulator, world: World, address: str) -> None:
        self.inner = inner
        self.world = world
        self.name = f"{inner.name} at {address}"  # what link errors name
        self.immediate_bytes = inner.immediate_bytes

    def handle(self, message: str) -> str | None:
        with self.world.lock:
            self.world.sync()
            return self.inner.handle(message)

    def handle_byte(self, code: int) -> str | None:
        with self.world.lock:
            self.world.sync()
            return self.inner.handle_byte(code)

    @property
    def reply_end(self) -> str:
        return self.inner.reply_end

    @property
    def command_ends(self) -> bytes:
        return self.inner.command_ends

    def device_clear(self) -> None:
        with self.world.lock:
            self.inner.device_clear()


class TriggerCable:
    """The cable from the stage controller's trigger output line 1 to the lock-in's TRIG IN
    (the profile's `[fly] trigger_wired`): each pulse the controller puts out (wave-generator
    triggers, `CTO 1 3 4`) reaches the lock-in at its own time."""

    LINE = 1

    def __init__(self, stage: PIGCSEmulator, lockin: SRSLockInEmulator, now: float) -> None:
        self.stage = stage
        self.lockin = lockin
        self._last = now

    def advance_to(self, now: float) -> None:
        wave = self.stage.wave
        if wave is None or now <= self._last:
            return
        if wave.lines[self.LINE].params[3] == 4:  # position-distance pulses are not relayed
            for t in wave.trigger_edges(self.LINE, self._last, now):
                self.lockin.trigger_in(t)
        self._last = now


class SimulatedBackend:
    """The simulated rig behind a profile with `simulated = true`."""

    def __init__(
        self, profile: Profile, clock: Clock, world_options: dict[str, Any] | None = None
    ) -> None:
        _check_emulated(profile)
        options = SimulationOptions.from_profile(profile).updated(world_options)
        self.profile = profile
        self.clock = clock
        self.options = options
        # the make-up's seed as before noise had a seed of its own: a profile's rig unchanged
        model_seq = np.random.default_rng(np.random.SeedSequence(options.seed).spawn(4)[3])
        model_seed = int(model_seq.integers(2**31))
        self.noise = NoiseSeeds(options.noise_seed)
        world_rng, lockin_rng, dmm_rng = self.noise.connection()
        self.world = World(
            clock,
            options.sample if options.sample is not None else VirtualSample.builtin(),
            self._sensor(options),
            self._stage(options),
            CoilModel.from_settings(
                _nominal_coils(profile),
                clock,
                calibration_error=options.coil_matrix_error,
                ambient=options.ambient_field,
                ambient_drift=options.ambient_drift,
                seed=model_seed,
                resolution=options.supply_resolution,
                slew_rate=options.supply_slew_rate,
                rating=supply_rating(options.supply_model)[1],
            ),
            self._fluxgate(options, np.random.default_rng(model_seed + 7)),
            rng=world_rng,
            sample_offset=options.sample_offset,
        )
        lockin = _LOCKINS[profile.lockin.link.implementation](clock, self.world, rng=lockin_rng)
        if isinstance(lockin, SR830Emulator):  # wired to the port the profile names, if any
            lockin.port = profile.lockin.interface
        stage = PIGCSEmulator(self.world.stage, controller=options.stage_controller)
        if profile.fly_trigger_wired:  # before the lock-in: edges reach it in time order
            self.world.add_listener(TriggerCable(stage, lockin, clock.now()).advance_to)
        self.world.add_listener(lockin.advance_to)
        self.emulators: dict[str, Emulator] = {
            profile.lockin.link.address: lockin,
            profile.stage.link.address: stage,
        }
        for axis, address in enumerate(profile.coils.addresses):
            self.emulators[address] = KepcoBOPEmulator(
                self.world.coils, axis, model=options.supply_model
            )
        self._dmm: DMMEmulator | None = None
        if profile.fluxgate is not None:
            self._dmm = DMMEmulator(
                self.world.fluxgate_volts, clock.now, profile.fluxgate.channels, rng=dmm_rng
            )
            self.emulators[profile.fluxgate.link.address] = self._dmm
        self._endpoints = {a: WorldSynced(e, self.world, a) for a, e in self.emulators.items()}
        self.faults = {a: Faults(disconnected=a in options.disconnected) for a in self.emulators}

    def begin_measurement(self, name: str, run: int | None) -> NoiseKey:
        """Draw the noise of the measurement of entry `name`, run `run`, afresh (see
        `simulators.noise_seeds`): a repeated scan repeats the field, never the noise. Returns
        where it came from, for the entry to record."""
        key, (world_rng, lockin_rng, dmm_rng) = self.noise.measurement(name, run)
        with self.world.lock:
            self.world.sync()  # the noise up to now is the last measurement's
            self.world.rng = world_rng
            self.lockin.rng = lockin_rng
            if self._dmm is not None:
                self._dmm.rng = dmm_rng
        return key

    def _sensor(self, options: SimulationOptions) -> MTJSensor:
        p = self.profile
        return MTJSensor(
            sensitivity=p.sensor.sensitivity_V_per_T,
            active_area=p.sensor.active_area,
            noise_rms=options.noise_rms,
            noise_bandwidth=enbw(p.lockin.time_constant, 2),
            drift_rate=options.drift_rate,
            offset=options.sensor_offset,
            reference_amplitude=p.lockin.reference_amplitude,
        )

    def _stage(self, options: SimulationOptions) -> StageModel:
        """The stage starts at its lower x, y limits with the sensor at the profile's height."""
        s = self.profile.stage
        travel = s.travel if options.stage_travel is None else options.stage_travel
        height = min(max(self.profile.sensor.height, travel[2, 0]), travel[2, 1])
        return StageModel.from_settings(
            s,
            self.clock,
            start=(travel[0, 0], travel[1, 0], height),
            travel=travel,
            needs_reference=options.stage_controller.referencing,
        )

    def _fluxgate(
        self, options: SimulationOptions, rng: np.random.Generator
    ) -> FluxgateModel | None:
        f = self.profile.fluxgate
        if f is None:
            return None
        return FluxgateModel.with_errors(
            f.scale,
            f.offset,
            scale_error=options.fluxgate_scale_error,
            orthogonality_error=options.fluxgate_orthogonality_error,
            offset_error=options.fluxgate_offset_error,
            noise_rms=options.fluxgate_noise_rms,
            rng=rng,
        )

    @classmethod
    def serving(
        cls,
        profile: Profile,
        *,
        time_scale: float = 1.0,
        world_options: dict[str, Any] | None = None,
    ) -> SimulatedBackend:
        """A backend whose world runs on its own, `time_scale` × real time, for `serve_tcp`."""
        return cls(profile, RealTimeClock(time_scale), world_options)

    def serve_tcp(self) -> EmulatorServer:
        """Start serving every instrument on its own loopback TCP port (see `tcp_server`).

        The sample's field is computed once first, so its compiled code is ready before any
        client connects: otherwise the first command waits a second or more for it (more on
        a loaded machine), and a client whose connect-time query times out quietly (PIPython
        asks `CSV?` to tell the GCS version) takes that late reply for its next query's.
        The world is kept up to the present while a client is connected (`EmulatorServer`'s
        `keep_up`), so that no instrument's answer waits on a lock-in catching up after a
        quiet while."""
        self.world.bz_noiseless([self.clock.now()])
        return EmulatorServer(dict(self._endpoints), keep_up=self.world.sync).start()

    def endpoint(self, address: str) -> Emulator:
        """The emulator at `address`, synchronised with the world (for any transport)."""
        try:
            return self._endpoints[address]
        except KeyError:
            raise InstrumentLost(
                "no simulated instrument at this address; the simulator has "
                + ", ".join(self._endpoints),
                instrument=address,
            ) from None

    def open_transport(self, address: str, link: LinkSettings) -> EmulatorTransport:
        """An in-process link to the emulator at `address`, with its injectable faults."""
        return EmulatorTransport(
            self.endpoint(address),
            timeout=link.timeout_s,
            clock=self.clock,
            faults=self.faults[address],
            latency=self.options.bus_latency,
            bytes_per_s=self.options.bus_bytes_per_s,
        )

    @property
    def lockin(self) -> SRSLockInEmulator:
        """The lock-in emulator (set `interference` on it to overload it)."""
        emulator = self.emulators[self.profile.lockin.link.address]
        assert isinstance(emulator, SRSLockInEmulator)
        return emulator

    def addresses(self) -> dict[str, str]:
        """Instrument role -> address, e.g. {'lockin': 'GPIB0::8::INSTR', 'coil_x': ...}."""
        p = self.profile
        out = {"lockin": p.lockin.link.address, "stage": p.stage.link.address}
        out.update({f"coil_{ax}": a for ax, a in zip("xyz", p.coils.addresses, strict=True)})
        if p.fluxgate is not None:
            out["fluxgate"] = p.fluxgate.link.address
        return out
