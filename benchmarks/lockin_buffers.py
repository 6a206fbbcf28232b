"""How fast the emulated lock-in buffers fill, in simulated samples per real second.

    .venv/bin/python benchmarks/lockin_buffers.py [--seconds 20]

The SR830 data buffer at 512 Hz and the SR860 capture buffer at its largest rate for a few
time constants sample the simulated world's MTJ (the builtin sample, the stage at rest) point
by point, each point integrating the output filter up to its time. This is the cost a flown
scan pays in the simulator for every sample, not anything the real instruments do.
"""

from __future__ import annotations

import argparse
import time

from simulators.backend import SimulatedBackend
from simulators.sr860_emulator import SR860Emulator
from smm_daq.clock import VirtualClock
from smm_daq.instruments.profile import load_profile


def _measure(emulator, clock: VirtualClock, start: str, count: str, seconds: float) -> float:
    emulator.handle(start)
    t0 = time.perf_counter()
    clock.sleep(seconds)
    emulator.handle("*STB?")  # brings the emulator, and its buffer, up to now
    elapsed = time.perf_counter() - t0
    samples = float(emulator.handle(count))
    return samples / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="simulated seconds")
    args = parser.parse_args()
    clock = VirtualClock()
    backend = SimulatedBackend(load_profile(), clock)
    backend.world.lockin_signal([0.0], 1.0)  # compile the field code first
    sr830 = backend.endpoint(backend.profile.lockin.link.address)
    rate = _measure(sr830, clock, "SRAT 13;SEND 1;REST;STRT", "SPTS?", args.seconds)
    print(f"SR830 buffer, 512 Hz: {rate:,.0f} simulated samples per real second")
    sr860 = SR860Emulator(clock, backend.world)
    backend.world.add_listener(sr860.advance_to)
    for oflt, tau in ((6, 1e-3), (9, 30e-3)):
        sr860.handle(f"OFLT {oflt};CAPTURELEN 4096;CAPTURECFG XY;CAPTURERATE 0")
        max_rate = float(sr860.handle("CAPTURERATEMAX?"))
        seconds = min(args.seconds, 0.9 * 4096 * 1024 / 8 / max_rate)
        per_s = _measure(sr860, clock, "CAPTURESTART ONE,IMM", "CAPTUREBYTES?", seconds) / 8
        sr860.handle("CAPTURESTOP")
        clock.sleep(256 / max_rate)  # it runs on to its 2 kB block's end: 256 samples at most
        print(
            f"SR860 capture X,Y at {max_rate:,.0f} Hz (τ = {tau * 1e3:g} ms):"
            f" {per_s:,.0f} simulated samples per real second"
        )


if __name__ == "__main__":
    main()
