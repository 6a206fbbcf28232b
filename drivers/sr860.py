"""Stanford Research SR860 500 kHz DSP lock-in amplifier (GPIB, RS-232, USB, Ethernet).

Sensitivity `SCAL i`, i = 0..27 for 1 V .. 1 nV full scale (1-5-2 steps, DOWNWARDS, unlike the
SR830); time constant `OFLT i`, i = 0..21 for 1 µs .. 30 ks; internal reference `RSRC 0`; input
range `IRNG 0` (1 V); voltage input `IVMD 0`, `ISRC` (0 A, 1 A-B), `ICPL`, `IGND`, `SYNC`,
harmonic `HARM`, phase `PHAS`; X and Y at one instant `SNAP? X,Y`. Overloads: `LIAS?`
latches them until read (bit 0 CH1 output, bit 1 CH2 output, bit 4 input range) and
`CUROVLDSTAT?` reports those present now (same bits).
"""

from __future__ import annotations

from typing import ClassVar

from drivers.link import parse_int
from drivers.srs_lockin import SRSLockIn
from smm_daq.errors import ProtocolError
from smm_daq.instruments.profile import LockInSettings

# CH1 output, CH2 output and input-range overload bits, in LIAS? and CUROVLDSTAT? alike.
_OVERLOAD_BITS = (1 << 0) | (1 << 1) | (1 << 4)


class SR860(SRSLockIn):
    MODEL = "SR860"
    SENSITIVITIES = (
        1.0, 0.5, 0.2, 0.1, 5e-2, 2e-2, 1e-2, 5e-3, 2e-3, 1e-3, 5e-4, 2e-4, 1e-4, 5e-5,
        2e-5, 1e-5, 5e-6, 2e-6, 1e-6, 5e-7, 2e-7, 1e-7, 5e-8, 2e-8, 1e-8, 5e-9, 2e-9, 1e-9,
    )  # fmt: skip
    TIME_CONSTANTS = (
        1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1,
        0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 3e3, 1e4, 3e4,
    )  # fmt: skip
    SENS_HEADER = "SCAL"
    REF_SOURCE = ("RSRC", 0)
    FREQ_RANGE = (0.001, 500000.0)
    AMPLITUDE_RANGE = (1e-9, 2.0)
    SNAP_XY = "SNAP? X,Y"
    MAX_HARMONIC = 99
    MAX_DETECTION_FREQUENCY = 500000.0
    CHOICES: ClassVar[dict[str, tuple[str, dict[object, int]]]] = {
        "input_mode": ("IVMD", {"voltage": 0, "current": 1}),
        "input": ("ISRC", {"A": 0, "A-B": 1}),
        "coupling": ("ICPL", {"AC": 0, "DC": 1}),
        "grounding": ("IGND", {"float": 0, "ground": 1}),
        "sync_filter": ("SYNC", {False: 0, True: 1}),
    }

    def chosen(self, settings: LockInSettings) -> dict[str, object]:
        """The SR860 chooses its reserve itself; its input is a voltage first of all."""
        return {"input_mode": "voltage", **super().chosen(settings)}

    def clear_offsets(self) -> None:
        for channel in (0, 1, 2):  # X, Y, R: offset 0 %, expansion off
            for command in ("COFP", "CEXP"):
                self.link.write(f"{command} {channel},0")
                self._check_zero(f"{command}? {channel}")

    def configure(self, settings: LockInSettings) -> None:
        self._set_index("IRNG", 0)
        super().configure(settings)

    def _status(self, command: str) -> int:
        value = self.link.query(command, lambda r: parse_int(r, what=f"{command} status"))
        if not 0 <= value <= 0xFFFF:
            raise ProtocolError(
                f"{command} gave {value}, not a 16-bit status", instrument=self.link.name
            )
        return value

    def overloaded(self) -> bool:
        latched = self._status("LIAS?")
        present = self._status("CUROVLDSTAT?")
        return bool((latched | present) & _OVERLOAD_BITS)
