"""MMT at scale on one machine: a synthetic sample of seed 001 from sample to inversion with
full uncertainties, on the CPU or a GPU; prints the time of each stage and the peak memory
(host: the process's maximum resident set size, numba's and BLAS's buffers included; GPU:
the high-water mark of CuPy's memory pool).

    python benchmarks/mmt_scale.py --preset paper-largest   # 500 × 500 × 75 µm, 1e5 /mm³
    python benchmarks/mmt_scale.py --preset small            # quick
    python benchmarks/mmt_scale.py --preset lab-size --device gpu
    python benchmarks/mmt_scale.py --preset lab-size --fraction 0.5   # a quarter of its area
    python benchmarks/mmt_scale.py --preset medium --qr-floor  # the CPU's ratio to its QR
    python benchmarks/mmt_scale.py --preset medium --qr-floor --repeat 5  # best of 5 each
    python benchmarks/mmt_scale.py --preset lab-size --step-factor 4  # all its grains, 1/16
                                                                      # of its sensors
    python benchmarks/mmt_scale.py --preset lab-size --model dipole   # the lab's workflow
    python benchmarks/mmt_scale.py --preset medium --model quadrupole --device gpu

Presets after the seed (point sensors 1 µm above the sample top, 1 µm sampling) and a
stand-in for the lab's real scans (951 × 771 sensors at 1.2 µm, 2 µm above, 4,300 grains);
5 nT noise. `--fraction` keeps a preset's sampling, height, depth and grain density on a
smaller area (each side × the fraction); `--step-factor K` keeps the area and the grains
(so Q's columns, which set the memory) with the sampling step × K (1/K² of the sensors, which
set the time of the QR, so a full-size time is about K² times that stage). `--qr-floor`
also times the CPU's QR alone (`QRUpdate` over blocks of a random matrix of Q's shape,
`floor_layouts`): folded in one stream and, where the inversion would fold in more
(`streams.fold`: enough rows, cores and memory), in that many with the inversion's blocks
(`streams.stream_block`) and, where the memory allows, with a whole block each; it prints
each and the inversion's time over the fastest (and over the one-stream floor), and for
scale LAPACK's dgeqrf of that matrix held whole (what a straightforward implementation would
factor; OpenBLAS runs it at a fraction of dgemm's speed); `--repeat N` times both N times,
alternating, and compares the best of each (this VM's speed drifts by up to 1.6× between
runs, so one pair of times can mislead at a second or less). Grain models are entries of MODELS:
uniformly magnetized cuboid grains (`invert_map`), or point-source grains (centroid and
volume, as from a micro-CT segmentation, drawn by `synth_points` at the preset's density)
expanded as a dipole, up to the quadrupole or up to the octupole (`joint.invert_scans`; 3, 8
or 15 unknowns per grain).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from smm_daq.thread_waits import quiet_idle_threads

# as `smm-daq` sets them (idle OpenBLAS and OpenMP threads otherwise spin after each call and
# take the cores from each other's work); before NumPy loads OpenBLAS
quiet_idle_threads()

import numpy as np
from scipy.linalg import lapack
from scipy.stats import chi2

from smm_daq.analysis.mmt import synth, synth_points
from smm_daq.analysis.mmt.solver import device as devices
from smm_daq.analysis.mmt.solver import memory as solver_memory
from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.analysis.mmt.solver.inversion import DEFAULT_BLOCK, invert_map
from smm_daq.analysis.mmt.solver.joint import Scan, invert_scans
from smm_daq.errors import InputError

UM = 1e-6
NOISE = 5e-9  # T


@dataclass(frozen=True)
class Preset:
    size_um: tuple[float, float]  # sample surface (x, y); sensors cover it at `step_um`
    thickness_um: float
    density_per_mm3: float
    step_um: float = 1.0
    height_um: float = 1.0
    sensor_size_um: tuple[float, float] = (0.0, 0.0)


_LAB_SIZE = (950 * 1.2, 770 * 1.2)  # 951 × 771 sensors at 1.2 µm
_LAB_THICKNESS = 40.0
PRESETS = {
    "small": Preset((100.0, 100.0), 30.0, 1e5),
    "medium": Preset((200.0, 200.0), 50.0, 1e5),
    "large": Preset((300.0, 300.0), 75.0, 1e5),
    "paper-largest": Preset((500.0, 500.0), 75.0, 1e5),
    "lab-size": Preset(_LAB_SIZE, _LAB_THICKNESS,
                       4300 / (_LAB_SIZE[0] * _LAB_SIZE[1] * _LAB_THICKNESS * 1e-9),
                       step_um=1.2, height_um=2.0),
}


@dataclass
class Case:
    """A grain model's synthetic sample, its scan and its inversion."""

    describe: str  # grains, cuboids/sources
    truth: np.ndarray  # (G, 3) the true magnetizations (A/m)
    scan: Callable[[], object]  # -> MapData
    invert: Callable[[object], object]  # MapData -> MMTResult


def cuboid_case(preset: Preset, size: tuple[float, float], rng: np.random.Generator,
                device: str) -> Case:
    sample = synth.make_sample((size[0] * UM, size[1] * UM), preset.thickness_um * UM,
                               preset.density_per_mm3, rng)
    height = preset.height_um * UM
    sensor = (preset.sensor_size_um[0] * UM, preset.sensor_size_um[1] * UM)
    g = sample.grains
    return Case(
        f"{g.n_grains} cuboid grains ({g.cuboids.shape[0]} cuboids)",
        sample.magnetization,
        lambda: synth.scan(sample, height=height, step=preset.step_um * UM,
                           sensor_size=sensor, noise=NOISE, rng=rng, device=device),
        lambda data: invert_map(data, g, height=height, sensor_size=sensor, sigma=NOISE,
                                device=device),
    )


def point_case(model: str) -> Callable[[Preset, tuple[float, float], np.random.Generator, str],
                                        Case]:
    """Point-source grains under a multipole `model` ("dipole", "quadrupole", "octupole")."""

    def case(preset: Preset, size: tuple[float, float], rng: np.random.Generator,
             device: str) -> Case:
        sample = synth_points.make_point_sample((size[0] * UM, size[1] * UM),
                                                preset.thickness_um * UM,
                                                preset.density_per_mm3, rng, model)
        height = preset.height_um * UM
        sensor = (preset.sensor_size_um[0] * UM, preset.sensor_size_um[1] * UM)
        g = sample.grains
        k = sample.coefficients.shape[1]
        return Case(
            f"{g.n_grains} point grains ({model}: {k} unknowns each, {k * g.n_grains} in all)",
            sample.coefficients[:, :3],
            lambda: synth_points.scan_points(sample, height=height, step=preset.step_um * UM,
                                             sensor_size=sensor, noise=NOISE, rng=rng,
                                             device=device),
            lambda data: invert_scans([Scan(data, height, sensor, sigma=NOISE)], g,
                                      model=model, device=device),
        )

    return case


# Grain models: each a function (preset, sample size in µm, rng, device) -> Case.
MODELS: dict[str, Callable[[Preset, tuple[float, float], np.random.Generator, str], Case]] = {
    "cuboid": cuboid_case,
    **{m: point_case(m) for m in ("dipole", "quadrupole", "octupole")},
}


def host_peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gpu_pool_mb(device: str) -> float | None:
    if device != "gpu":
        return None
    import cupy

    return cupy.get_default_memory_pool().total_bytes() / 2**20


def memory(device: str) -> str:
    gpu = gpu_pool_mb(device)
    return f"host peak {host_peak_mb():.0f} MB" + ("" if gpu is None else f", GPU {gpu:.0f} MB")


def floor_layouts(n_sensors: int, unknowns: int, block: int = DEFAULT_BLOCK
                  ) -> list[tuple[int, int]]:
    """(streams, the most rows of each stream's blocks) of the QR floors to time: one stream's
    blocks of `block`; where the inversion folds in more streams (`streams.stream_count`),
    theirs as it folds them (`streams.stream_block`), and that many of `block` rows each
    where `memory.solve_bytes` says they fit: the QR alone may be faster so, and the floor is
    the fastest QR of Q's shape this code does."""
    several = qr_streams.stream_count(unknowns + 1, n_sensors, block)
    if several == 1:
        return [(1, block)]
    layouts = [(1, block), (several, qr_streams.stream_block(block, several))]
    have = solver_memory.available_bytes()
    if have is None or solver_memory.solve_bytes(unknowns, block, streams=several) <= have:
        layouts.append((several, block))
    return layouts


def qr_floor(n_sensors: int, n_columns: int, streams: int = 1,
             rows: int = DEFAULT_BLOCK) -> float:
    """Seconds of the CPU path's QR alone (`streams.fold` of `QRUpdate`s over blocks of a
    random (P, n + 1)), in `streams` streams of blocks of at most `rows` rows each."""
    rng = np.random.default_rng(0)
    cols = n_columns + 1
    _, sizes, owners = qr_streams.plan(n_sensors, rows * streams if streams > 1 else rows,
                                       streams)
    source = np.asfortranarray(rng.standard_normal((max(sizes), cols)))

    def fill(stream: int, b: int, out: np.ndarray) -> None:
        out[...] = source[:out.shape[0]]

    t = time.perf_counter()
    qr_streams.fold(cols, sizes, owners, fill, None)
    return time.perf_counter() - t


LAPACK_QR_MAX_BYTES = 2 * 2**30  # the dense matrix `lapack_qr` factors is held whole


def lapack_qr(n_sensors: int, n_columns: int) -> float | None:
    """Seconds of LAPACK's dgeqrf on a random dense (P, n + 1): the QR of [Q | φ] as a
    straightforward implementation would do it, Q held whole; None when it exceeds
    LAPACK_QR_MAX_BYTES."""
    if n_sensors * (n_columns + 1) * 8 > LAPACK_QR_MAX_BYTES:
        return None
    a = np.asfortranarray(np.random.default_rng(0).standard_normal((n_sensors, n_columns + 1)))
    t = time.perf_counter()
    lapack.dgeqrf(a, overwrite_a=1)
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", choices=PRESETS, default="small")
    parser.add_argument("--model", choices=MODELS, default="cuboid")
    parser.add_argument("--device", choices=devices.DEVICES, default="auto")
    parser.add_argument("--fraction", type=float, default=1.0,
                        help="each side of the preset's area times this (0 < f ≤ 1)")
    parser.add_argument("--step-factor", type=int, default=1,
                        help="sampling step × this integer, same area and grains")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--qr-floor", action="store_true",
                        help="also time the CPU's QR alone and print the ratio")
    parser.add_argument("--repeat", type=int, default=1,
                        help="with --qr-floor: time the inversion and its floor this many times "
                             "each, alternating, and compare the best of each")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error(f"--repeat {args.repeat}: expected an integer ≥ 1")
    if args.repeat > 1 and not args.qr_floor:
        parser.error("--repeat times the inversion against its QR floor; expected --qr-floor")
    if not 0 < args.fraction <= 1:
        parser.error(f"--fraction {args.fraction}: expected 0 < f ≤ 1")
    if args.step_factor < 1:
        parser.error(f"--step-factor {args.step_factor}: expected an integer ≥ 1")
    preset = PRESETS[args.preset]
    try:
        device = devices.resolve(args.device)
    except InputError as exc:
        parser.error(f"--device {args.device}: {exc}")
    nx = math.floor(preset.size_um[0] * args.fraction / preset.step_um + 1e-9)
    ny = math.floor(preset.size_um[1] * args.fraction / preset.step_um + 1e-9)
    size = (nx * preset.step_um, ny * preset.step_um)
    preset = replace(preset, step_um=preset.step_um * args.step_factor)
    print(f"preset {args.preset} × {args.fraction:g} (step × {args.step_factor}): "
          f"{size[0]:g} × {size[1]:g} × "
          f"{preset.thickness_um:g} µm, {preset.density_per_mm3:.4g} grains/mm³, step "
          f"{preset.step_um:g} µm, height {preset.height_um:g} µm, sensor "
          f"{preset.sensor_size_um[0]:g} × {preset.sensor_size_um[1]:g} µm, noise "
          f"{NOISE / 1e-9:g} nT; model {args.model}; device {device}; cores {os.cpu_count()}",
          flush=True)
    if device == "gpu":
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        print(f"GPU {props['name'].decode()}, {props['totalGlobalMem'] / 2**30:.0f} GiB",
              flush=True)
    rng = np.random.default_rng(args.seed)
    stages: dict[str, float] = {}
    t = time.perf_counter()
    case = MODELS[args.model](preset, size, rng, device)
    stages["synthetic sample"] = time.perf_counter() - t
    print(f"{case.describe}; synthetic sample {stages['synthetic sample']:.1f} s, "
          f"{memory(device)}", flush=True)
    t = time.perf_counter()
    data = case.scan()
    stages["forward scan (truth + noise)"] = time.perf_counter() - t
    print(f"{data.bz.shape[1]} × {data.bz.shape[0]} = {data.bz.size} sensors; forward scan "
          f"{stages['forward scan (truth + noise)']:.1f} s, {memory(device)}", flush=True)
    t = time.perf_counter()
    result = case.invert(data)
    stages["inversion total"] = time.perf_counter() - t
    for key, value in result.timings.items():
        if key != "total_s":
            stages[f"  {key[:-2].replace('_', ' ')}"] = value
    if device == "gpu":
        for key, value in devices.gpu_solver().timings.items():
            if key.endswith("_s"):
                stages[f"    GPU {key[:-2].replace('_', ' ')}"] = value
    print(f"inversion {stages['inversion total']:.1f} s, {memory(device)}", flush=True)
    t = time.perf_counter()
    table = result.table()
    stages["per-grain statistics (UR, SSR, directions)"] = time.perf_counter() - t
    total = sum(v for k, v in stages.items() if not k.startswith("  "))
    for key, value in stages.items():
        print(f"{key:46s} {value:9.2f} s")
    print(f"{'total (sample to uncertainties)':46s} {total:9.2f} s")
    print(f"peak memory: {memory(device)}")
    ur = table["uncertainty_ratio_pct"]
    diff = result.magnetization - case.truth
    err = np.linalg.norm(diff, axis=1)
    inside = err <= ur / 100 * np.linalg.norm(result.magnetization, axis=1)
    finite = np.isfinite(ur)
    # the exact 95 % region of each grain's M: its covariance's χ² ellipsoid (3 dof); the UR
    # sphere is a scalar summary that over- or under-covers as the covariance is anisotropic
    solved = np.linalg.solve(result.covariance[finite], diff[finite][:, :, None])[:, :, 0]
    in_ellipsoid = np.einsum("gi,gi->g", diff[finite], solved) <= chi2.ppf(0.95, 3)
    q1, q2, q3 = np.percentile(ur[finite], [25, 50, 75]) if finite.any() else (np.nan,) * 3
    print(f"cond(Q) {result.condition_number:.3g} (1-norm estimate); uncertainty ratio quartiles "
          f"{q1:.3g} / {q2:.3g} / {q3:.3g} %; {int(np.sum(~finite))} grains unresolved; "
          f"true M inside its 95 % χ² ellipsoid for {100 * np.mean(in_ellipsoid):.1f} % of the "
          f"resolved grains (inside the UR sphere: {100 * np.mean(inside):.1f} % of grains)")
    higher = result.higher_orders() if hasattr(result, "higher_orders") else None
    if higher is not None:
        print(f"higher orders resolved (p < 0.05) for {int(np.sum(higher[2]))} of "
              f"{higher[2].size} grains")
    if args.qr_floor:
        unknowns = getattr(result, "coefficients", result.magnetization).size
        inversions = [stages["inversion total"]]
        layouts = floor_layouts(result.n_sensors, unknowns)
        floors: dict[tuple[int, int], list[float]] = {layout: [] for layout in layouts}
        for i in range(args.repeat):  # the VM's speed drifts: compare the best of each
            if i:
                t = time.perf_counter()
                case.invert(data)
                inversions.append(time.perf_counter() - t)
            for (streams, rows), times in floors.items():
                times.append(qr_floor(result.n_sensors, unknowns, streams, rows))
        best = f", best of {args.repeat}" if args.repeat > 1 else ""
        floor = min(min(times) for times in floors.values())
        folded = layouts[1] if len(layouts) > 1 else layouts[0]  # as the inversion folds
        told = "; ".join(
            f"{'one stream' if streams == 1 else f'{streams} streams'} of blocks ≤ {rows} rows"
            f"{' (as the inversion)' if (streams, rows) == folded else ''} "
            f"{min(times):.2f} s" for (streams, rows), times in floors.items())
        if len(layouts) == 1:
            told += " (one stream only: too few rows, cores or memory for more)"
        elif len(layouts) == 2:
            told += (f" ({layouts[1][0]} streams of blocks ≤ {DEFAULT_BLOCK} rows not timed: "
                     "too little memory)")
        print(f"QR floor (QR alone{best}): {told}; inversion {min(inversions):.2f} s = "
              f"{min(inversions) / floor:.2f} × the fastest floor "
              f"({min(inversions) / min(floors[(1, DEFAULT_BLOCK)]):.2f} × the one-stream "
              "floor)", flush=True)
        dense = lapack_qr(result.n_sensors, unknowns)
        print("for scale, LAPACK's dgeqrf of Q whole: " + (
            f"{dense:.2f} s (the inversion {min(inversions) / dense:.2f} × that)"
            if dense is not None else f"not timed (over {LAPACK_QR_MAX_BYTES / 2**30:g} GiB)"),
            flush=True)


if __name__ == "__main__":
    main()
