"""Stanford Research SR830 DSP lock-in amplifier (GPIB or RS-232).

Input `ISRC` (0 A, 1 A-B, 2 and 3 current), coupling `ICPL`, shield `IGND`, dynamic reserve
`RMOD` (0 high, 1 normal, 2 low noise), `SYNC`, harmonic `HARM`, phase `PHAS` (0.01°).
Sensitivity `SENS i`, i = 0..26 for 2 nV .. 1 V full scale (1-2-5 steps); time constant
`OFLT i`, i = 0..19 for 10 µs .. 30 ks (1-3 steps); internal reference `FMOD 1`; X and Y at one
instant `SNAP? 1,2`. Overloads latch in the LIA status byte (`LIAS?`, cleared by reading): bit 0
input or reserve, bit 1 filter, bit 2 output. Replies go to the interface `OUTX` names, so the
driver sets it first (0 RS-232, 1 GPIB).
"""

from __future__ import annotations

from typing import ClassVar

from drivers.link import parse_int
from drivers.srs_lockin import SRSLockIn
from drivers.transports import SERIAL_PREFIX
from smm_daq.errors import ProtocolError
from smm_daq.instruments.profile import LockInSettings

# Bits of the LIA status byte that mean an overload: input/reserve, filter, output.
_OVERLOAD_BITS = 0b111


class SR830(SRSLockIn):
    MODEL = "SR830"
    SENSITIVITIES = (
        2e-9, 5e-9, 1e-8, 2e-8, 5e-8, 1e-7, 2e-7, 5e-7, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 5e-5,
        1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0,
    )  # fmt: skip
    TIME_CONSTANTS = (
        1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3,
        1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4,
    )  # fmt: skip
    SENS_HEADER = "SENS"
    REF_SOURCE = ("FMOD", 1)
    FREQ_RANGE = (0.001, 102000.0)
    AMPLITUDE_RANGE = (0.004, 5.0)
    AMPLITUDE_STEP = 0.002
    SNAP_XY = "SNAP? 1,2"
    MAX_HARMONIC = 19999
    MAX_DETECTION_FREQUENCY = 102000.0
    CHOICES: ClassVar[dict[str, tuple[str, dict[object, int]]]] = {
        "input": ("ISRC", {"A": 0, "A-B": 1, "I (1 MOhm)": 2, "I (100 MOhm)": 3}),
        "coupling": ("ICPL", {"AC": 0, "DC": 1}),
        "grounding": ("IGND", {"float": 0, "ground": 1}),
        "reserve": ("RMOD", {"high": 0, "normal": 1, "low_noise": 2}),
        "sync_filter": ("SYNC", {False: 0, True: 1}),
    }

    def chosen(self, settings: LockInSettings) -> dict[str, object]:
        return {**super().chosen(settings), "reserve": settings.reserve}

    def clear_offsets(self) -> None:
        for channel in (1, 2, 3):  # X, Y, R: offset 0 %, expand ×1
            self.link.write(f"OEXP {channel},0,0")
            self._check_zero(f"OEXP? {channel}")

    def prepare_interface(self, address: str) -> None:
        serial = address.upper().startswith("ASRL") or address.startswith(SERIAL_PREFIX)
        self.link.write(f"OUTX {0 if serial else 1}")

    def overloaded(self) -> bool:
        status = self.link.query("LIAS?", lambda r: parse_int(r, what="LIA status byte"))
        if not 0 <= status <= 255:
            raise ProtocolError(
                f"LIA status byte {status} outside 0..255", instrument=self.link.name
            )
        return bool(status & _OVERLOAD_BITS)
