"""Instrument profiles: which implementation each instrument uses, where it is, its limits.

A profile is a TOML file (see `configs/simulator.toml` and `configs/example-lab.toml`). Keys a
person writes carry their unit (`height_um`, `max_field_uT`); the loaded `Profile` holds SI
values. Every error names the file, the key, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from smm_daq.errors import InputError
from smm_daq.finite import finite_number
from smm_daq.instruments.lockin_models import (
    AMPLITUDE_RANGES,
    HARMONIC_LIMITS,
    LEAST_PIECE_BYTES,
    PIECE_TIMEOUT_SHARE,
)
from smm_daq.instruments.serial_keys import lockin_line, unused_baud_rate
from smm_daq.instruments.transport import BITS_PER_BYTE, DEFAULT_BAUD_RATE, is_own_lan_device
from smm_daq.text_files import TOO_MANY_DIGITS, quoted, read_text_file, shown

UM = 1e-6
UT = 1e-6
NT = 1e-9

DEFAULT_PROFILE = Path(__file__).resolve().parents[2] / "configs" / "simulator.toml"

# What any rig of this kind can be: a profile beyond these is a typing mistake, not a rig.
# (The rig's own ratings, read at connect, may be tighter still.)
MAX_TIMEOUT_S = 300.0  # a reply later than 5 min is a dead link
# s: a link's least timeout. A query's reply takes tens of ms over RS-232 at 9600 baud and
# ms over GPIB or LAN; a timeout shorter than any reply ends every exchange in a lost reply
MIN_TIMEOUT_S = 0.1
# s: pyvisa-py's HiSLIP device clear pauses this long between its two channels' exchanges
# (an instrument's clear answered, then its completion asked for), within the link's timeout
HISLIP_CLEAR_PAUSE_S = 0.1
# s: a HiSLIP link's least timeout: the clear's pause, and a reply's least time for its
# exchanges; at MIN_TIMEOUT_S every device clear (after each lost reply) would be cut
MIN_HISLIP_TIMEOUT_S = HISLIP_CLEAR_PAUSE_S + MIN_TIMEOUT_S
# a HiSLIP instrument's VISA address (TCPIP[n]::host::hislip[n][,port][::INSTR]: VISA, and
# the transport, take one without its ::INSTR for the same instrument)
_HISLIP = re.compile(r"TCPIP\d*::.+::hislip\d*(,\d+)?(::INSTR)?", re.IGNORECASE)
MAX_RETRIES = 10
BAUD_RATES = (50, 4_000_000)
MAX_SENSITIVITY_V_PER_T = 1e9  # an MTJ bridge with its preamplifier gives about 1e3 V/T
MAX_HEIGHT_UM = 10_000.0  # the piezo stage's z travel: a scan height beyond it is no height
# A height is the sensor's active layer above the sample top (the forward model's sensor
# plane), so 0 is no height a sensor can scan at, not even in contact.
HEIGHT_NOT_ZERO = ("0 would put the sensor's active layer in the sample's top surface, but it "
                   "lies above its chip's face: in contact, the chip on the sample, the height "
                   "is that stand-off")
MAX_SENSOR_UM = 10_000.0
MAX_OFFSET_V = 10.0  # the lock-in's input range
TIME_CONSTANTS_S = (1e-6, 3e4)  # SR830: 10 µs .. 30 ks; SR860: 1 µs .. 30 ks
LOCKIN_SENSITIVITY_V = (1e-9, 1.0)  # SR830/SR860 full scales: 1-2 nV .. 1 V
REFERENCE_HZ = (1e-3, 5e5)  # SR830: 1 mHz .. 102 kHz; SR860: .. 500 kHz
REFERENCE_V = (1e-9, 5.0)  # sine output amplitude, rms
MAX_TRAVEL_UM = 1e6  # no stage of a microscope travels a metre
MAX_VELOCITY_UM_PER_S = 1e6  # 1 m/s: beyond any piezo or hybrid stage
RESOLUTION_NM = (1e-3, 1e5)
MAX_SETTLE_S = 60.0
MAX_COIL_T_PER_A = 0.1  # Helmholtz coils of a microscope: about 5e-5 T/A
MAX_AMBIENT_UT = 1000.0  # the Earth's field is below 70 µT; a lab magnet nearby a few 100
MAX_CURRENT_A = 50.0  # the largest bipolar supplies (Kepco BOP 20-20 is 20 A)
CURRENT_READ_MARGIN = 1.1  # a supply's reading (current, voltage) may exceed its rating so
MAX_RAMP_A_PER_S = 100.0
# 10 mA/s: a 50 A supply ramped down in 1.5 h; slower, the make-safe bound (`safe_bound`: four
# such ramps) is no time a supervisor would wait, and at 1e-308 A/s or so it overflows
MIN_RAMP_A_PER_S = 0.01
# replies a coil supply may lose during one ramp-down and still be ramped on (each a link
# timeout at most; within the supply's budget for the whole make-safe path, `loss_budget`)
RAMP_LOST_REPLIES = 2
MAX_FIELD_UT = 10_000.0  # 10 mT: air coils around a microscope never reach it
# coils.field_tolerance_nT: its default, and its bound (also on one a stored profile gives)
DEFAULT_TOLERANCE_NT = 50.0
MAX_TOLERANCE_NT = 100_000.0
# nT: the ambient field's drift during a scan that is warned of (fluxgate.drift_tolerance_nT):
# well below the MTJ's 250 nT noise in one reading, so the warning comes before the drift shows
# in a map as an offset, and above the fluxgate's noise and a quiet lab's daily change
DRIFT_TOLERANCE_NT = 100.0
# nT: the least drift tolerance taken: ten times a fluxgate's noise in one reading (about
# 0.5 nT), and about a quiet lab's change over a few lines; a tolerance below it warns of
# noise, one line after another, not of a change in the ambient field
MIN_TOLERANCE_NT = 5.0
MAX_FLUXGATE_T_PER_V = 1e-2  # fluxgates give 1e4..1e6 V/T
# T/V: the least a fluxgate's scale may give along any direction (its smallest singular
# value), 100 times below the most sensitive fluxgate's (1e6 V/T); less, and its whole
# ±10 V output reads under 100 nT, so every field set fails its verification
MIN_FLUXGATE_T_PER_V = 1e-8
# lockin.overrange_fraction's least: below half of full scale, readings the lock-in measures
# well would count as out of range and pause every scan with a signal
MIN_OVERRANGE_FRACTION = 0.5
MAX_CHANNEL = 10_000


@dataclass(frozen=True)
class LinkSettings:
    """How to reach one instrument."""

    implementation: str
    address: str
    timeout_s: float
    retries: int
    baud_rate: int | None = None


@dataclass(frozen=True)
class SensorSettings:
    sensitivity_V_per_T: float
    channel: str  # "X" or "R"
    height: float  # m
    active_area: tuple[float, float]  # (w, l) in m; (0, 0) is a point sensor
    offset_V: float


LOCKIN_INPUTS = ("A", "A-B")
LOCKIN_RESERVES = ("high", "normal", "low_noise")
LOCKIN_INTERFACES = ("rs232", "gpib")  # the SR830's rear-panel ports


@dataclass(frozen=True)
class LockInSettings:
    link: LinkSettings
    time_constant: float  # s
    sensitivity: float  # V full scale
    reference_frequency: float  # Hz
    reference_amplitude: float  # V rms
    overrange_fraction: float  # |reading| above this fraction of full scale counts as out of range
    # Everything else that changes X and Y; the driver sets each and reads it back at connect.
    reference_phase: float = 0.0  # degrees, −180 .. 180
    harmonic: int = 1  # detect at this multiple of the reference frequency
    input: str = "A"  # "A" (single-ended) or "A-B" (differential); the sensor is a voltage
    coupling: str = "AC"  # "AC" or "DC"
    grounding: str = "float"  # input shield: "float" or "ground"
    reserve: str = "normal"  # SR830 dynamic reserve: "high", "normal" or "low_noise"
    sync_filter: bool = False  # synchronous filter (acts below 200 Hz)
    # SR830 only: the rear-panel port the link reaches, "rs232" or "gpib" (its replies go only
    # to the one `OUTX` names); None: inferred from the address (ASRL/serial: RS-232, else
    # GPIB), which cannot tell a serial-to-Ethernet server's socket in front of its RS-232
    # port. Refused for an SR860, which has no OUTX (it answers where each query came from).
    interface: str | None = None


@dataclass(frozen=True)
class StageSettings:
    link: LinkSettings
    axes: tuple[str, str, str]  # controller axis names for sample x, y, z
    axis_sign: tuple[int, int, int]  # +1 or -1: controller direction onto the sample frame
    travel: np.ndarray  # (3, 2) [min, max] in m, sample frame
    velocity: float  # m/s
    resolution: float  # m
    settle_time: float  # s
    # Reference unreferenced axes (motor stages: FRF drives each to its switch) at connect.
    reference_on_connect: bool = False
    # Not a profile key. False: connecting leaves unreferenced axes as they are (the
    # controller refuses to move them) instead of refusing, and the stage names them
    # (`unreferenced_axes`): for `smm-daq check`, which must not move the stage.
    refuse_unreferenced: bool = True


@dataclass(frozen=True)
class CoilSettings:
    link: LinkSettings
    addresses: tuple[str, str, str]  # one supply per coil axis
    calibration: np.ndarray  # (3, 3) T/A: field at the sample per coil current, sample frame
    ambient_field: np.ndarray  # (3,) T: field at the sample with all currents at zero
    max_current: float  # A
    max_ramp_rate: float  # A/s
    max_field: float  # T, magnitude of the applied field
    field_tolerance: float  # T: verification with the fluxgate must agree within this
    safe_state: str  # "zero" (ramp to zero applied field) or "off" (ramp down, outputs off)
    # A: the supplies' rated current, at most the current a supply found in voltage mode can
    # drive, which connecting ramps down (so the bound on making the rig safe counts it)
    supply_rating: float = MAX_CURRENT_A


@dataclass(frozen=True)
class FluxgateSettings:
    link: LinkSettings
    channels: tuple[int, int, int]  # multimeter scanner channels for the x, y, z outputs
    scale: np.ndarray  # (3, 3) T/V, sample frame: B = scale @ (V - offset)
    offset: np.ndarray  # (3,) V
    # T: a scan warns once the field read at a line's end is this far from its start's check
    drift_tolerance: float = DRIFT_TOLERANCE_NT * NT


@dataclass(frozen=True)
class Profile:
    path: Path
    name: str
    simulated: bool
    sensor: SensorSettings
    lockin: LockInSettings
    stage: StageSettings
    coils: CoilSettings
    fluxgate: FluxgateSettings | None
    calibration_file: Path | None  # where calibrate-coils stores the fitted matrix and ambient
    simulation: dict[str, Any] = field(default_factory=dict)  # validated by the simulator
    text: str = ""  # the file as written, stored with every scan
    # The coil settings as the profile writes them, before a stored calibration is laid over
    # them: the simulator builds its "true" coils from these, so calibrating does not move them.
    coils_as_written: CoilSettings | None = None
    # [fly] trigger_wired: the stage controller's trigger output is cabled to the lock-in's
    # TRIG IN, so a fly line's buffer can start on the stage's edge
    fly_trigger_wired: bool = False
    # the session file and scan entry of a profile stored with a scan (`smm-daq safe
    # --from-file FILE --entry NAME` makes its rig safe), None for a profile file
    stored_in: tuple[str, str] | None = field(default=None, compare=False)

    def fingerprint(self) -> dict[str, Any]:
        """What must match for a scan to be resumed with this profile: hardware, geometry
        (the stage's frame too: which controller axis is which sample axis, its direction,
        and its travel, which tells one stage from another on the same controller type: one
        within the stored travel is the same stage, its soft limits tightened), and
        the lock-in settings that set the scale of X (the sensor's excitation and what is
        detected of it; the time constant is checked on its own, `resumable`), and the coils'
        calibration: their matrix and the ambient field their currents null, which together
        give the currents of the plan's field (another ambient field in the profile would
        take the rest of the scan at a field off by the difference)."""
        lockin = self.lockin
        return {
            "simulated": self.simulated,
            "sensor_sensitivity_V_per_T": self.sensor.sensitivity_V_per_T,
            "sensor_height_m": self.sensor.height,
            "sensor_size_m": list(self.sensor.active_area),
            "lockin": lockin.link.implementation,
            "lockin_reference_frequency_Hz": lockin.reference_frequency,
            "lockin_reference_amplitude_V": lockin.reference_amplitude,
            "lockin_reference_phase_deg": lockin.reference_phase,
            "lockin_harmonic": lockin.harmonic,
            "lockin_input": lockin.input,
            "lockin_coupling": lockin.coupling,
            "stage": self.stage.link.implementation,
            "stage_axes": list(self.stage.axes),
            "stage_axis_sign": list(self.stage.axis_sign),
            "stage_travel_m": self.stage.travel.tolist(),
            "coils": self.coils.link.implementation,
            "coil_calibration_T_per_A": self.coils.calibration.tolist(),
            "coil_ambient_field_T": self.coils.ambient_field.tolist(),
        }


class _Reader:
    """Reads typed values from a TOML table, naming the file and full key in every error."""

    def __init__(self, source: str, table: dict[str, Any], prefix: str = "") -> None:
        self.source = source
        self.table = table
        self.prefix = prefix
        self.used: set[str] = set()

    def _key(self, key: str) -> str:
        return f"{self.prefix}{key}"

    def fail(self, key: str, value: object, expected: str) -> InputError:
        return InputError(
            f"key '{self._key(key)}' is {quoted(value)}; expected {expected}",
            source=self.source
        )

    def _get(self, key: str, default: object) -> object:
        self.used.add(key)
        if key in self.table:
            return self.table[key]
        if default is _REQUIRED:
            near = difflib.get_close_matches(key, [str(k) for k in self.table], n=1, cutoff=0.8)
            typo = (f"; the table has '{self._key(near[0])}' instead: a misspelling?"
                    if near else "")
            raise InputError(f"key '{self._key(key)}' is missing{typo}; expected it (see "
                             "configs/simulator.toml for every key)", source=self.source)
        return default

    def sub(self, key: str, *, required: bool = True) -> _Reader | None:
        value = self._get(key, _REQUIRED if required else None)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, value, "a table")
        return _Reader(self.source, value, f"{self._key(key)}.")

    def string(
        self, key: str, default: object = None, choices: tuple[str, ...] | None = None
    ) -> str:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, value, "a non-empty string, not blanks alone")
        if choices is not None and value not in choices:
            raise self.fail(key, value, "one of " + ", ".join(repr(c) for c in choices))
        return value

    def number(
        self,
        key: str,
        default: object = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
        unit: str = "",
    ) -> float:
        value = self._get(key, _REQUIRED if default is None else default)
        low = "(0" if positive and (lo is None or lo <= 0) else (
            f"[{lo:g}" if lo is not None else "(-inf")
        high = f"{hi:g}]" if hi is not None else "inf)"
        bounded = positive or lo is not None or hi is not None
        expected = f"a number in {low}, {high}{unit}" if bounded else "a finite number"
        if not finite_number(value):  # a word or NaN: told the range too, where there is one
            raise self.fail(key, value, expected)
        value = float(value) + 0.0  # -0.0 is 0 (numpy refuses a noise SD of -0.0)
        if (positive and value <= 0) or (lo is not None and value < lo) or (
            hi is not None and value > hi
        ):
            raise self.fail(key, value, expected)
        return value

    def integer(self, key: str, default: object = None, *, lo: int | None = None,
                hi: int | None = None) -> int:
        value = self._get(key, _REQUIRED if default is None else default)
        if (isinstance(value, bool) or not isinstance(value, int)
                or (lo is not None and value < lo) or (hi is not None and value > hi)):
            raise self.fail(key, value, f"a whole number in [{'-inf' if lo is None else lo}, "
                                        f"{'inf' if hi is None else hi}]")
        return value

    def boolean(self, key: str, default: object = None) -> bool:
        value = self._get(key, _REQUIRED if default is None else default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "true or false")
        return value

    def array(self, key: str, shape: tuple[int, ...], default: object = None, *,
              limit: float = math.inf, unit: str = "") -> np.ndarray:
        """An array of finite numbers each within ±limit."""
        value = self._get(key, _REQUIRED if default is None else default)
        bound = f" within ±{limit:g}{unit}" if math.isfinite(limit) else ""
        expected = f"an array of shape {shape} of finite numbers{bound}"
        try:
            arr = np.array(value, dtype=float)
        except (TypeError, ValueError, OverflowError):
            raise self.fail(key, value, expected) from None
        if (arr.shape != shape or not np.all(np.isfinite(arr))
                or np.any(np.abs(arr) > limit)
                # true and "1e-5" convert to numbers, but neither is one: as number() refuses
                or any(isinstance(v, (bool, str))
                       for v in np.ravel(np.array(value, dtype=object)))):
            raise self.fail(key, value, expected)
        return arr

    def strings(self, key: str, n: int, default: object = None) -> tuple[str, ...]:
        value = self._get(key, _REQUIRED if default is None else default)
        if (
            not isinstance(value, list)
            or len(value) != n
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise self.fail(key, value, f"a list of {n} non-empty strings, not blanks alone")
        return tuple(value)

    def check_unknown(self) -> None:
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise InputError(
                f"unknown key {shown(self._key(unknown[0]))}; expected one of "
                + ", ".join(repr(self._key(k)) for k in sorted(self.used)),
                source=self.source,
            )


_REQUIRED = object()


def _link(r: _Reader, *, baud_rate: int | None = None, address: str | None = None
          ) -> LinkSettings:
    """An instrument's link; `baud_rate` the default of its `baud_rate` key, for a serial port
    (None: the port's own default, 9600, unless the profile names one)."""
    link = LinkSettings(
        implementation=r.string("implementation"),
        address=address if address is not None else r.string("address"),
        timeout_s=r.number("timeout_s", 3.0, lo=MIN_TIMEOUT_S, hi=MAX_TIMEOUT_S,
                           unit=f" s (below {MIN_TIMEOUT_S:g} s an instrument's reply comes "
                                "too late for every exchange)"),
        retries=r.integer("retries", 2, lo=0, hi=MAX_RETRIES),
        baud_rate=None if baud_rate is None and "baud_rate" not in r.table
        else r.integer("baud_rate", baud_rate, lo=BAUD_RATES[0], hi=BAUD_RATES[1]),
    )
    _check_hislip_timeout(r, link.timeout_s, (link.address,))
    return link


def _check_hislip_timeout(r: _Reader, timeout_s: float, addresses: Sequence[str]) -> None:
    """InputError when a HiSLIP address has a timeout its device clear cannot be done in
    (`MIN_HISLIP_TIMEOUT_S`): each lost reply's clear would be cut, and the connection
    opened again."""
    hislip = next((a for a in addresses if _HISLIP.fullmatch(a.strip())), None)
    if hislip is not None and timeout_s < MIN_HISLIP_TIMEOUT_S:
        raise r.fail("timeout_s", timeout_s, (
            f"at least {MIN_HISLIP_TIMEOUT_S:g} s for the HiSLIP address {hislip!r}: its "
            f"device clear (after a lost reply) pauses {HISLIP_CLEAR_PAUSE_S:g} s between its "
            f"two exchanges, which need {MIN_TIMEOUT_S:g} s more, so a shorter timeout cuts "
            "every clear"))


def _height(r: _Reader) -> float:
    """sensor.height_um, in m; 0 or less refused saying why (`HEIGHT_NOT_ZERO`)."""
    raw = r.table.get("height_um")
    if isinstance(raw, int | float) and not isinstance(raw, bool) and raw <= 0:
        raise r.fail("height_um", raw, f"a height above the sample top, > 0 µm ({HEIGHT_NOT_ZERO})")
    return r.number("height_um", positive=True, hi=MAX_HEIGHT_UM, unit=" µm") * UM


def _sensor(r: _Reader) -> SensorSettings:
    area = r.array("active_area_um", (2,), limit=MAX_SENSOR_UM, unit=" µm")
    if np.any(area < 0) or (area[0] > 0) != (area[1] > 0):  # one 0: a line, no sensor's shape
        raise r.fail("active_area_um", area.tolist(),
                     "two sizes > 0 µm, the width and length of the active area, or 0, 0 for a "
                     "point sensor")
    s = SensorSettings(
        sensitivity_V_per_T=r.number("sensitivity_V_per_T", lo=-MAX_SENSITIVITY_V_PER_T,
                                     hi=MAX_SENSITIVITY_V_PER_T, unit=" V/T"),
        channel=r.string("channel", "X", choices=("X", "R")),
        height=_height(r),
        active_area=(float(area[0]) * UM, float(area[1]) * UM),
        offset_V=r.number("offset_V", 0.0, lo=-MAX_OFFSET_V, hi=MAX_OFFSET_V, unit=" V"),
    )
    if abs(s.sensitivity_V_per_T) < 1e-6:
        raise r.fail("sensitivity_V_per_T", s.sensitivity_V_per_T,
                     "a non-zero number, |s| >= 1e-06 V/T (V per T at the lock-in input)")
    r.check_unknown()
    return s


DEFAULT_RESERVE = "normal"  # lockin.reserve, which every shipped profile states


class ProfileWarning(UserWarning):
    """A profile key that is valid but has no effect on the instrument named."""


def _lockin(r: _Reader, *, simulated: bool) -> LockInSettings:
    s = LockInSettings(
        link=_link(r),
        time_constant=r.number("time_constant_s", lo=TIME_CONSTANTS_S[0],
                               hi=TIME_CONSTANTS_S[1], unit=" s"),
        sensitivity=r.number("sensitivity_V", lo=LOCKIN_SENSITIVITY_V[0],
                             hi=LOCKIN_SENSITIVITY_V[1], unit=" V"),
        reference_frequency=r.number("reference_frequency_Hz", lo=REFERENCE_HZ[0],
                                     hi=REFERENCE_HZ[1], unit=" Hz"),
        reference_amplitude=r.number("reference_amplitude_V", lo=REFERENCE_V[0],
                                     hi=REFERENCE_V[1], unit=" V"),
        overrange_fraction=r.number("overrange_fraction", 0.95, lo=MIN_OVERRANGE_FRACTION,
                                    hi=1.0, unit=" of full scale (below half, readings the "
                                                 "lock-in measures well would pause every scan)"),
        reference_phase=r.number("reference_phase_deg", 0.0, lo=-180.0, hi=180.0),
        harmonic=r.integer("harmonic", 1, lo=1),
        input=r.string("input", "A", choices=LOCKIN_INPUTS),
        coupling=r.string("coupling", "AC", choices=("AC", "DC")),
        grounding=r.string("grounding", "float", choices=("float", "ground")),
        reserve=r.string("reserve", DEFAULT_RESERVE, choices=LOCKIN_RESERVES),
        sync_filter=r.boolean("sync_filter", False),
        interface=r.string("interface", choices=LOCKIN_INTERFACES)
        if "interface" in r.table else None,
    )
    if s.interface is not None and s.link.implementation == "sr860":
        # the SR830 sends its replies to the one port OUTX names; the SR860 has no OUTX and
        # answers each query on the port it came in on, so its driver would ignore the key
        raise r.fail("interface", s.interface,
                     "no key for an SR860: it answers each query on the port the query came "
                     "in on (it has no OUTX); the key names the port an SR830's replies go to "
                     "(an SR860 behind a serial-to-Ethernet server: give its line's "
                     "'baud_rate' instead)")
    if s.link.implementation == "sr860" and s.reserve != DEFAULT_RESERVE:
        # the SR860 chooses its dynamic reserve itself; refusing the key would refuse every
        # profile (each carries the default), so only a reserve asked for is warned of
        warnings.warn(ProfileWarning(
            f"{r.source}: key 'lockin.reserve' is {s.reserve!r}, ignored for an SR860 (it "
            f"chooses its dynamic reserve itself; only an SR830 sets it): expected "
            f"{DEFAULT_RESERVE!r} or no key"), stacklevel=2)
    _check_harmonic(r, s)
    _check_amplitude(r, s)
    port = None if simulated else _port_of(s.link.address)  # simulated: the emulator's name
    if s.interface is not None and port not in (None, s.interface):
        # the driver would send every reply to the port the link does not reach (OUTX)
        raise r.fail("interface", s.interface,
                     f"'{port}' or no key: address {s.link.address!r} reaches the lock-in's "
                     f"{PORT_NAMES[port]} port")
    if not simulated:
        _check_line_baud_rate(r, s)
        _check_line_timeout(r, s)
    r.check_unknown()
    return s


def _check_line_baud_rate(r: _Reader, s: LockInSettings) -> None:
    """InputError when a lock-in's `baud_rate` on a LAN address (the rate of the serial line
    behind a serial-to-Ethernet server, which sizes its buffer's pieces: the LAN cannot tell
    it) names a line an SR830's replies do not go to: its replies reach the RS-232 port only
    where `interface` says "rs232" (OUTX)."""
    on_lan = s.link.address.strip().upper().startswith("TCPIP")
    if (s.link.baud_rate is None or not on_lan or s.link.implementation != "sr830"
            or s.interface == "rs232"):
        return
    raise r.fail("baud_rate", s.link.baud_rate, (
        f"no key, or interface = 'rs232' with it: on the LAN address {s.link.address!r} "
        "'baud_rate' is the rate of the RS-232 line behind a serial-to-Ethernet server, and "
        f"an SR830's replies go there only with interface = 'rs232' (with "
        f"{'no interface' if s.interface is None else repr(s.interface)} they go to its GPIB "
        "port)"))


def _check_line_timeout(r: _Reader, s: LockInSettings) -> None:
    """InputError when a lock-in on a LAN address reaches its RS-232 port through a
    serial-to-Ethernet server (an SR830 with interface 'rs232', an SR860 with a baud_rate)
    and the least piece its buffer is read in (`LEAST_PIECE_BYTES`) does not come within
    `PIECE_TIMEOUT_SHARE` of the timeout at the line's rate: a LAN read ends a timeout after
    it began, so every buffer read would time out."""
    least = LEAST_PIECE_BYTES.get(s.link.implementation)
    if least is None or not s.link.address.strip().upper().startswith("TCPIP"):
        return
    if s.link.implementation == "sr830" and s.interface == "rs232":
        baud = s.link.baud_rate or DEFAULT_BAUD_RATE
    elif (s.link.implementation == "sr860" and s.link.baud_rate is not None
          and not is_own_lan_device(s.link.address)):  # its own Ethernet: no line
        baud = s.link.baud_rate
    else:
        return
    piece_s = least * BITS_PER_BYTE / baud
    need = piece_s / PIECE_TIMEOUT_SHARE
    if s.link.timeout_s < need:
        raise r.fail("timeout_s", s.link.timeout_s, (
            f"at least {math.ceil(need * 100) / 100:g} s: the buffer's least piece ({least} "
            f"bytes) takes {piece_s:.3g} s on the {baud}-baud line behind the LAN address "
            f"{s.link.address!r}, and must come within {PIECE_TIMEOUT_SHARE:g} of the timeout "
            "(or a faster baud_rate, set on the lock-in and the server alike)"))


def _check_harmonic(r: _Reader, s: LockInSettings) -> None:
    """InputError when the lock-in model named cannot detect at the harmonic asked for (its
    driver would refuse it at connect, after the rest of the rig had connected)."""
    limits = HARMONIC_LIMITS.get(s.link.implementation)
    if limits is None:
        return
    if s.harmonic > limits.max_harmonic:
        raise r.fail("harmonic", s.harmonic, f"a whole number in [1, {limits.max_harmonic}] "
                                             f"(the harmonics an {limits.model} detects at)")
    detected = s.harmonic * s.reference_frequency
    if detected > limits.max_detection_hz:
        key, value = (("harmonic", s.harmonic) if s.harmonic > 1
                      else ("reference_frequency_Hz", s.reference_frequency))
        raise r.fail(key, value, (
            f"a value that keeps harmonic × reference_frequency_Hz ({s.harmonic} × "
            f"{s.reference_frequency:g} = {detected:g} Hz) within the {limits.max_detection_hz:g} "
            f"Hz an {limits.model} detects at (a lower harmonic or reference frequency)"))


def _check_amplitude(r: _Reader, s: LockInSettings) -> None:
    """InputError when the lock-in model named cannot give the sine-output amplitude asked
    for (its driver would refuse it at connect, after the rest of the rig had connected)."""
    limits = AMPLITUDE_RANGES.get(s.link.implementation)
    if limits is None:
        return
    lo, hi = limits
    if not lo <= s.reference_amplitude <= hi:
        model = HARMONIC_LIMITS[s.link.implementation].model
        raise r.fail("reference_amplitude_V", s.reference_amplitude,
                     f"a number in [{lo:g}, {hi:g}] V (the sine-output amplitudes an {model} "
                     "gives)")


PORT_NAMES = {"rs232": "RS-232", "gpib": "GPIB"}


def _port_of(address: str) -> str | None:
    """The lock-in port ('rs232', 'gpib') an address can only reach; None for one that may
    reach either (a socket: a serial-to-Ethernet server or a GPIB gateway)."""
    text = address.strip().upper()
    if text.startswith(("ASRL", "SERIAL:")):
        return "rs232"
    return "gpib" if text.startswith("GPIB") else None


def _stage(r: _Reader) -> StageSettings:
    travel = r.array("travel_um", (3, 2), limit=MAX_TRAVEL_UM, unit=" µm") * UM
    if np.any(travel[:, 1] <= travel[:, 0]):
        raise r.fail("travel_um", (travel / UM).tolist(), "[min, max] per axis with min < max")
    signs = r.array("axis_sign", (3,), [1, 1, 1], limit=10)
    if not np.all(np.isin(signs, (-1, 1))):
        raise r.fail("axis_sign", signs.tolist(), "three values, each +1 or -1")
    axes = r.strings("axes", 3)
    if len(set(axes)) != 3 or not all(a.isascii() and a.isprintable() and " " not in a
                                      for a in axes):
        # commands list axes separated by spaces ('MOV 1 0.5 2 0.5'): a name holding a space
        # is two there, and a name given twice moves one axis for two sample directions
        raise r.fail("axes", list(axes),
                     "three different controller axis names, ASCII without spaces")
    s = StageSettings(
        link=_link(r, baud_rate=115200),  # PI controllers' RS-232 default
        axes=axes,  # type: ignore[arg-type]
        axis_sign=tuple(int(v) for v in signs),  # type: ignore[arg-type]
        travel=travel,
        velocity=r.number("velocity_um_per_s", positive=True, hi=MAX_VELOCITY_UM_PER_S,
                          unit=" µm/s") * UM,
        resolution=r.number("resolution_nm", lo=RESOLUTION_NM[0], hi=RESOLUTION_NM[1],
                            unit=" nm") * 1e-9,
        settle_time=r.number("settle_time_s", 0.0, lo=0.0, hi=MAX_SETTLE_S, unit=" s"),
        reference_on_connect=r.boolean("reference_on_connect", False),
    )
    r.check_unknown()
    return s


def _coils(r: _Reader) -> CoilSettings:
    addresses = r.strings("addresses", 3)
    cal = _invertible(r, "calibration_T_per_A", "T/A", MAX_COIL_T_PER_A)
    s = CoilSettings(
        link=_link(r, address=addresses[0]),
        addresses=addresses,  # type: ignore[arg-type]
        calibration=cal,
        ambient_field=r.array("ambient_field_uT", (3,), [0.0, 0.0, 0.0], limit=MAX_AMBIENT_UT,
                              unit=" µT") * UT,
        max_current=r.number("max_current_A", positive=True, hi=MAX_CURRENT_A, unit=" A"),
        max_ramp_rate=r.number("max_ramp_A_per_s", lo=MIN_RAMP_A_PER_S, hi=MAX_RAMP_A_PER_S,
                               unit=" A/s"),
        max_field=r.number("max_field_uT", positive=True, hi=MAX_FIELD_UT, unit=" µT") * UT,
        field_tolerance=r.number("field_tolerance_nT", DEFAULT_TOLERANCE_NT,
                                 lo=MIN_TOLERANCE_NT, hi=MAX_TOLERANCE_NT,
                                 unit=f" nT (below {MIN_TOLERANCE_NT:g} nT the fluxgate's "
                                      "noise alone fails the field's verification)") * NT,
        safe_state=r.string("safe_state", "zero", choices=("zero", "off")),
        supply_rating=r.number("supply_rating_A", MAX_CURRENT_A, positive=True,
                               hi=MAX_CURRENT_A, unit=" A"),
    )
    _check_hislip_timeout(r, s.link.timeout_s, addresses)  # each supply's on that link
    if s.supply_rating < s.max_current:
        raise r.fail("supply_rating_A", s.supply_rating,
                     f"at least coils.max_current_A ({s.max_current:g} A)")
    r.check_unknown()
    return s


def _invertible(r: _Reader, key: str, unit: str, limit: float) -> np.ndarray:
    """A 3 × 3 matrix that maps one frame onto another, so it must be well invertible."""
    m = r.array(key, (3, 3), limit=limit, unit=f" {unit}")
    if np.linalg.cond(m) > 1e8:
        raise r.fail(key, m.tolist(), f"an invertible 3 × 3 matrix ({unit})")
    return m


def _fluxgate_scale(r: _Reader) -> np.ndarray:
    """fluxgate.scale_T_per_V: invertible, and giving a field a fluxgate can measure along
    every direction (at least MIN_FLUXGATE_T_PER_V)."""
    m = _invertible(r, "scale_T_per_V", "T/V", MAX_FLUXGATE_T_PER_V)
    if np.linalg.svd(m, compute_uv=False).min() < MIN_FLUXGATE_T_PER_V:
        raise r.fail("scale_T_per_V", m.tolist(),
                     f"a matrix giving at least {MIN_FLUXGATE_T_PER_V:g} T/V along every "
                     "direction (fluxgates give 1e-6..1e-4 T/V: 1e4..1e6 V/T); less, and the "
                     "fluxgate's whole ±10 V output reads under 100 nT, failing the "
                     "verification of every field set")
    return m


def _fluxgate(r: _Reader) -> FluxgateSettings:
    channels = r.array("channels", (3,), [101, 102, 103])
    if (
        np.any(channels != np.round(channels))
        or not np.all((channels // 100 >= 1) & (channels // 100 <= 3))
        or not np.all((channels % 100 >= 1) & (channels % 100 <= 40))
        or len(set(channels.tolist())) != 3
    ):
        raise r.fail(
            "channels",
            [int(c) if c == round(c) else c for c in channels.tolist()],
            "three different scanner channels numbered slot and channel, as the multimeter "
            "(34970A) numbers them: 101-140 in slot 1, 201-240 in slot 2, 301-340 in slot 3",
        )
    s = FluxgateSettings(
        link=_link(r),
        channels=tuple(int(c) for c in channels),  # type: ignore[arg-type]
        scale=_fluxgate_scale(r),
        offset=r.array("offset_V", (3,), [0.0, 0.0, 0.0], limit=MAX_OFFSET_V, unit=" V"),
        drift_tolerance=r.number("drift_tolerance_nT", DRIFT_TOLERANCE_NT, lo=MIN_TOLERANCE_NT,
                                 hi=MAX_TOLERANCE_NT,
                                 unit=f" nT (below {MIN_TOLERANCE_NT:g} nT the fluxgate's "
                                      "noise and a quiet lab's own changes would be warned of "
                                      "at almost every line)"
                                 ) * NT,
    )
    r.check_unknown()
    return s


def _apply_calibration_file(path: Path, coils: CoilSettings) -> CoilSettings:
    """Overlay a stored coil calibration (written by `smm-daq calibrate-coils`)."""
    source = str(path)
    text = read_text_file(path, "coil calibration",
                          "a TOML coil calibration (as `smm-daq calibrate-coils` writes it)")
    data = load_toml(text, source)
    r = _Reader(source, data)
    cal = _invertible(r, "calibration_T_per_A", "T/A", MAX_COIL_T_PER_A)
    ambient = r.array("ambient_field_uT", (3,), limit=MAX_AMBIENT_UT, unit=" µT") * UT
    r.string("fitted_at", "unknown")
    r.number("residual_nT", 0.0, lo=0.0, hi=MAX_TOLERANCE_NT, unit=" nT")
    r.check_unknown()
    return CoilSettings(**{**coils.__dict__, "calibration": cal, "ambient_field": ambient})


def load_toml(text: str, source: str) -> dict[str, Any]:
    """The tables of a profile, recipe or calibration file's text; InputError naming `source`
    when it is not TOML or looks cut short (`check_complete`)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc}); expected a complete TOML file",
                         source=source) from None
    except RecursionError:  # as from a value of 100,000 '['
        raise InputError("not valid TOML (arrays or tables nested too deep to read); expected "
                         "a complete TOML file", source=source) from None
    except ValueError:  # an integer of more digits than Python converts
        raise InputError(f"not valid TOML ({TOO_MANY_DIGITS}); expected a complete TOML file",
                         source=source) from None
    check_complete(text, source)
    return data


def check_complete(text: str, source: str) -> None:
    """A file cut short mid-line may still parse (`max_current_A = 3` from `= 30.0`), so a
    profile or recipe must end with a line break, as editors write it."""
    if text.strip() and not text.endswith("\n"):
        last = text.rstrip("\n").rsplit("\n", 1)[-1]
        lineno = text.count("\n") + 1
        raise InputError(
            f"line {lineno} ({last[:60]!r}) does not end with a line break: the file may be cut "
            "short; expected the complete file (add a line break at its end if it is)",
            source=source,
        )


def _calibration_file(rig: _Reader, profile: Path) -> Path | None:
    """rig.calibration_file, relative to the profile's folder; None when not given. One that
    does not exist is no error (the first calibration is stored there), but one the system
    cannot even look for (a name longer than it allows, a NUL in it) is refused here, before
    a command would fail on it with a traceback."""
    name = rig._get("calibration_file", None)
    if name is not None and not isinstance(name, str):
        raise rig.fail("calibration_file", name, "a path (relative to the profile)")
    if not name:
        return None
    path = profile.parent / name
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        pass  # where `calibrate-coils` will store the first calibration
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(f"key 'rig.calibration_file' is {shown(name)}, which the system "
                         f"cannot look up ({why}); expected a path to a file (relative to the "
                         "profile)", source=rig.source) from None
    return path


def parse_profile(text: str, path: Path) -> Profile:
    """Parse and validate profile text; `path` names it in errors and anchors relative paths."""
    source = str(path)
    top = _Reader(source, load_toml(text, source))
    rig = top.sub("rig")
    assert rig is not None
    name = rig.string("name")
    simulated = rig.boolean("simulated", False)
    calibration_file = _calibration_file(rig, path)
    rig.check_unknown()

    coils_as_written = coils = _coils(top.sub("coils"))  # type: ignore[arg-type]
    if calibration_file is not None and calibration_file.exists():
        coils = _apply_calibration_file(calibration_file, coils)
    fluxgate_table = top.sub("fluxgate", required=False)
    simulation = top._get("simulation", {})
    if not isinstance(simulation, dict):
        raise top.fail("simulation", simulation, "a table")
    if simulation and not simulated:
        raise InputError("a [simulation] table is given, but rig.simulated is not true (a real "
                         "rig); expected rig.simulated = true with it, or no [simulation] table "
                         "for real instruments", source=source)
    fly_table = top.sub("fly", required=False)
    trigger_wired = False
    if fly_table is not None:
        trigger_wired = fly_table.boolean("trigger_wired", False)
        fly_table.check_unknown()
    profile = Profile(
        path=path,
        name=name,
        simulated=simulated,
        sensor=_sensor(top.sub("sensor")),  # type: ignore[arg-type]
        lockin=_lockin(top.sub("lockin"), simulated=simulated),  # type: ignore[arg-type]
        stage=_stage(top.sub("stage")),  # type: ignore[arg-type]
        coils=coils,
        fluxgate=_fluxgate(fluxgate_table) if fluxgate_table is not None else None,
        calibration_file=calibration_file,
        simulation=simulation,
        text=text,
        coils_as_written=coils_as_written,
        fly_trigger_wired=trigger_wired,
    )
    top.check_unknown()
    if not simulated:  # a simulated profile's addresses name emulators, not ports
        _warn_unused_baud_rates(source, top.table, profile)
    return profile


def _warn_unused_baud_rates(source: str, tables: dict[str, Any], profile: Profile) -> None:
    """A ProfileWarning for each section's `baud_rate` that sets or times no serial line at
    its addresses (`serial_keys`): a key left from a serial setup is said to be ignored, and
    the profile, which works without it, still loads."""
    lockin = profile.lockin
    links: list[tuple[str, LinkSettings, Sequence[str], bool]] = [
        ("lockin", lockin.link, (lockin.link.address,), lockin_line(
            lockin.link.address, lockin.link.implementation, lockin.interface)),
        ("stage", profile.stage.link, (profile.stage.link.address,), False),
        ("coils", profile.coils.link, profile.coils.addresses, False),
    ]
    if profile.fluxgate is not None:
        links.append(("fluxgate", profile.fluxgate.link, (profile.fluxgate.link.address,),
                      False))
    for section, link, addresses, line in links:
        if "baud_rate" not in tables[section] or link.baud_rate is None:
            continue
        said = unused_baud_rate(section, link.baud_rate, addresses, line=line)
        if said is not None:
            warnings.warn(ProfileWarning(f"{source}: {said}"), stacklevel=3)


def load_profile(path: str | Path | None = None) -> Profile:
    """Load a profile file (the simulator profile when `path` is None)."""
    p = Path(path) if path is not None else DEFAULT_PROFILE
    text = read_text_file(p, "profile", "a TOML instrument profile")
    return parse_profile(text, p.resolve())
