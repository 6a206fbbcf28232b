"""How long the emulated E-727 takes to answer a full data-recorder readout (`DRR?`).

Two full record tables of 32 768 samples each (an E-727 shares its 262 144 points among its 8
tables; one sample per 20 µs servo cycle), recorded while the stage made 4000 moves, so every
sample is looked up in a long motion history. Prints the time and the reply's size.

    python benchmarks/pi_recorder_readout.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from simulators.emulator import EmulatorTransport
from simulators.pi_emulator import E727, PIGCSEmulator
from simulators.stage_model import StageModel
from smm_daq.clock import VirtualClock


def main() -> None:
    argparse.ArgumentParser(description=__doc__).parse_args()  # --help; no options
    clock = VirtualClock()
    travel = np.array([[0.0, 1.8e-3], [0.0, 1.8e-3], [0.0, 0.4e-3]])
    model = StageModel(clock, travel=travel, velocity=1e-3, settle_time=0.0)
    link = EmulatorTransport(PIGCSEmulator(model, controller=E727), clock=clock)
    for command in ("SVO 1 1 2 1 3 1", "DRC 1 1 2 2 1 1", "DRT 0 1 0", "RTR 1"):
        link.write(command)
    for k in range(4000):
        link.write(f"MOV 1 {k % 100}")
        clock.advance(32768 * 2e-5 / 4000)  # the moves span the table
    start = time.perf_counter()
    reply = link.query("DRR? 1 32768 1 2")
    elapsed = time.perf_counter() - start
    print(f"DRR? of 2 × 32768 samples over 4000 moves: {elapsed:.2f} s, "
          f"{len(reply) / 1e6:.1f} MB of reply")


if __name__ == "__main__":
    main()
