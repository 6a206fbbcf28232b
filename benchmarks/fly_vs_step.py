"""A region stepped and flown at equal pixel noise on the simulator, with bus latencies.

    .venv/bin/python benchmarks/fly_vs_step.py [--nx 201] [--ny 4] [--latency-ms 2]

Both scans run the real drivers against the emulated SR830 and PI C-884 on the virtual clock,
every message taking `--latency-ms` and every reply byte 1/`--bytes-per-s` of rig time. The
target pixel noise σ is that of one step reading at the profile's 30 ms (the simulator's
0.25 µT). The step scan's best settings are searched: for each SR830 time constant, the least
dwell (in time constants, readings one τ apart) whose averaged noise (the filter's
autocorrelation, `flown_pixel_sd` with one sample per τ) is at most σ, settle 8 τ; each
candidate is timed on a short line on the simulator and the fastest scans the region. The
fly scan takes the shortest pixel time whose flown noise is at most σ (τ' ≤ pixel time / 5).
Printed: the rig-clock seconds of each scan (the entries' `rig_clock_duration`), the speed-up, the
floor T = N·b²/(2σ²) for the noise each reached, each scan's ratio to it, and the spread of
the difference of the two maps against the noise the model expects. A flown pixel can come
in under the floor: the filter's memory reaches a little into the neighbouring pixels, so its
noise is slightly lower than b/√(2·pixel time) and correlated with theirs (the floor assumes
independent pixels). The fly's overhead over its pixels' own time (run-ups, moves between
lines, buffer read-out) is printed too.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import h5py
import numpy as np

from drivers.sr830 import SR830
from simulators.sensor_model import enbw
from smm_daq.acquisition.fly.noise import flown_pixel_sd
from smm_daq.acquisition.fly.settings import TAU_FRACTION, FlySettings
from smm_daq.acquisition.plan import DEFAULT_SETTLE_TAU, ScanPlan
from smm_daq.acquisition.sequencer import Sequencer
from smm_daq.instruments.profile import load_profile
from smm_daq.instruments.rig import open_rig
from smm_daq.storage.nexus import read_map

PROFILE = Path(__file__).resolve().parents[1] / "configs" / "simulator.toml"
NOISE = 0.25e-6  # T RMS of one reading at 30 ms, 2 poles (the simulator's)
POLES = 2
CENTRE = (12.5e-3, 12.5e-3)


def step_sd(b_n: float, tau: float, dwell: int) -> float:
    """Pixel noise of a step reading averaged over dwell + 1 readings one τ apart."""
    return flown_pixel_sd(b_n, (dwell + 1) * tau, tau, POLES, 1.0 / tau)


def fly_sd(b_n: float, pixel_time: float) -> tuple[float, float]:
    """Flown pixel noise and the time constant the fly plan uses at this pixel time."""
    tau = max(t for t in SR830.TIME_CONSTANTS if t <= pixel_time / TAU_FRACTION * (1 + 1e-9))
    rate = min(r for r in (0.0625 * 2**i for i in range(14)) if r >= 8 / pixel_time)
    return flown_pixel_sd(b_n, pixel_time, tau, POLES, rate), tau


def run(profile, path: Path, plan: ScanPlan, world: dict, tau: float | None
        ) -> tuple[float, float]:
    """The scan's rig-clock duration (the stage first brought to the region's corner, so the
    long move there is not counted) and the median time between its readings in a line."""
    with open_rig(profile, world_options=world) as rig:
        if tau is not None:
            rig.lockin.set_time_constant(tau)
        rig.stage.move_to(plan.x[0], plan.y[0], plan.height)
        assert Sequencer(rig, path, plan).run() == "finished"
    with h5py.File(path, "r") as f:
        g = f[plan.name]
        spacing = float(np.median(np.abs(np.diff(g["data/time"][0]))))
        return float(g["rig_clock_duration"][()]), spacing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nx", type=int, default=201)
    ap.add_argument("--ny", type=int, default=4)
    ap.add_argument("--step-um", type=float, default=10.0)
    ap.add_argument("--latency-ms", type=float, default=2.0)
    ap.add_argument("--bytes-per-s", type=float, default=100e3)
    args = ap.parse_args()
    profile = load_profile(PROFILE)
    b_n = NOISE / np.sqrt(enbw(0.03, POLES))
    sigma = NOISE
    world = {"bus_latency": args.latency_ms * 1e-3, "bus_bytes_per_s": args.bytes_per_s}
    step = args.step_um * 1e-6
    size = ((args.nx - 1) * step, (args.ny - 1) * step)
    n = args.nx * args.ny
    print(f"region {args.nx} × {args.ny} pixels of {args.step_um:g} µm; target σ "
          f"{sigma * 1e9:.0f} nT; noise density {b_n * 1e9:.1f} nT/√Hz; bus "
          f"{args.latency_ms:g} ms/message, {args.bytes_per_s:g} B/s")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.h5"
        best = None
        for tau in (t for t in SR830.TIME_CONSTANTS if 1e-3 <= t <= 0.1):
            dwell = next((d for d in range(200) if step_sd(b_n, tau, d) <= sigma), None)
            if dwell is None:
                continue
            trial = ScanPlan.from_center(f"trial_{tau:g}", CENTRE, (20 * step, 0.0), step,
                                         settle_tau=DEFAULT_SETTLE_TAU, dwell_tau=dwell)
            per_point = run(profile, path, trial, world, tau)[1]
            print(f"  step candidate τ {tau * 1e3:g} ms, dwell {dwell} τ: "
                  f"{per_point * 1e3:.1f} ms per point (σ {step_sd(b_n, tau, dwell) * 1e9:.0f} nT)")
            if best is None or per_point < best[0]:
                best = (per_point, tau, dwell)
        assert best is not None
        _, tau, dwell = best
        sd_step = step_sd(b_n, tau, dwell)
        stepped = ScanPlan.from_center("step", CENTRE, size, step, dwell_tau=dwell)
        t_step = run(profile, path, stepped, world, tau)[0]

        pixel_time = 0.02
        while fly_sd(b_n, pixel_time)[0] > sigma:
            pixel_time *= 1.01
        sd_fly, tau_fly = fly_sd(b_n, pixel_time)
        flown = ScanPlan.from_center("fly", CENTRE, size, step,
                                     fly=FlySettings(pixel_time=pixel_time))
        t_fly = run(profile, path, flown, {**world, "seed": 7}, None)[0]

        diff = read_map(path, "fly").bz - read_map(path, "step").bz
        floor_step = n * b_n**2 / (2 * sd_step**2)
        floor_fly = n * b_n**2 / (2 * sd_fly**2)
    print(f"step: τ {tau * 1e3:g} ms, settle {DEFAULT_SETTLE_TAU:g} τ, dwell {dwell} τ, "
          f"σ {sd_step * 1e9:.0f} nT: {t_step:.1f} s rig clock, {t_step / floor_step:.2f} × "
          f"its floor {floor_step:.1f} s")
    print(f"fly:  pixel {pixel_time * 1e3:.1f} ms, τ' {tau_fly * 1e3:g} ms, σ "
          f"{sd_fly * 1e9:.0f} nT: {t_fly:.1f} s rig clock, {t_fly / floor_fly:.2f} × its "
          f"floor {floor_fly:.1f} s")
    print(f"fly overhead: {t_fly:.1f} s for {n} pixels × {pixel_time * 1e3:.1f} ms = "
          f"{n * pixel_time:.1f} s of pixel time ({(t_fly / (n * pixel_time) - 1) * 100:.0f} %)")
    print(f"speed-up {t_step / t_fly:.2f} × (goal ≥ 1.5); fly within "
          f"{(t_fly / floor_fly - 1) * 100:.0f} % of the floor (goal ≤ 20 %)")
    print(f"fly − step: SD {diff.std() * 1e9:.0f} nT, model {np.hypot(sd_step, sd_fly) * 1e9:.0f}"
          f" nT")


if __name__ == "__main__":
    main()
