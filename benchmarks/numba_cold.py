"""numba's cold compile, kernel by kernel: the demo and the `mmt invert` paths a user's first
runs take (cuboid grains; dipole, quadrupole and octupole point grains under point and area
sensors; a joint fit of two heights), run in this process against an empty NUMBA_CACHE_DIR.

    python benchmarks/numba_cold.py [--steps demo,cuboid,...] [--json OUT.json]

Prints, for each kernel numba compiled, the signatures it compiled and the seconds spent
(wall, and the compiling thread's CPU time, which a loaded machine inflates less), then the
total and the whole run's wall time. Every kernel of every step is compiled once: a kernel
already compiled by an earlier step is not counted again.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

STEPS = ("demo", "cuboid", "dipole", "quadrupole", "octupole", "joint")


def _install_recorder() -> list[dict]:
    """Record each numba:compile event: kernel, signature, wall and CPU seconds exclusive of
    the kernels compiled inside it (numba compiles a callee on its own before its caller)."""
    from numba.core import event

    records: list[dict] = []
    stack: list[list[float]] = []

    class Recorder(event.Listener):
        def on_start(self, ev):
            stack.append([time.perf_counter(), time.thread_time(), 0.0, 0.0])

        def on_end(self, ev):
            t0, c0, inner_wall, inner_cpu = stack.pop()
            wall, cpu = time.perf_counter() - t0, time.thread_time() - c0
            if stack:
                stack[-1][2] += wall
                stack[-1][3] += cpu
            disp = ev.data["dispatcher"]
            name = f"{disp.py_func.__module__.rsplit('.', 1)[-1]}.{disp.py_func.__qualname__}"
            records.append({"kernel": name, "args": str(ev.data["args"]),
                            "wall": wall - inner_wall, "cpu": cpu - inner_cpu})

    event.register("numba:compile", Recorder())
    return records


def _cli(*argv: object) -> None:
    from smm_daq.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    if code != 0:
        raise SystemExit(f"{argv}: exit {code}\n{err.getvalue()}")


def _point(d: Path, model: str, sensor: str) -> None:
    f = d / f"{model}.h5"
    grains = d / f"{model}.txt"
    _cli("mmt", "synth", "--out", f, "--name", "s", "--model", model, "--size-um", "30,30",
         "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2", "--height-um",
         "3", "--noise-nT", "20", "--seed", "4", "--grains-out", grains,
         "--truth-out", d / f"{model}_t.csv", "--sensor-size-um", sensor)
    _cli("mmt", "invert", f, "--entry", "s", "--grain-format", "points", "--grains", grains,
         "--model", model, "--out", d / f"{model}.csv", "--sensor-size-um", sensor)


def run_step(step: str, d: Path) -> None:
    if step == "demo":
        _cli("demo", "--out", d / "demo.h5")
    elif step == "cuboid":
        f = d / "mmt.h5"
        _cli("mmt", "synth", "--out", f, "--name", "synth", "--size-um", "40,40",
             "--thickness-um", "10", "--density-per-mm3", "3e5", "--step-um", "2",
             "--height-um", "5", "--noise-nT", "50", "--seed", "4",
             "--grains-out", d / "grains.csv", "--truth-out", d / "truth.csv")
        _cli("mmt", "invert", f, "--entry", "synth", "--grains", d / "grains.csv",
             "--out", d / "result.csv")
    elif step == "dipole":
        _point(d, "dipole", "0,0")
    elif step in ("quadrupole", "octupole"):
        _point(d, step, "1,1")
    elif step == "joint":
        f = d / "joint.h5"
        for name, height in (("low", "2"), ("high", "4")):
            _cli("mmt", "synth", "--out", f, "--name", name, "--model", "quadrupole",
                 "--size-um", "30,30", "--thickness-um", "10", "--density-per-mm3", "3e5",
                 "--step-um", "2", "--height-um", height, "--noise-nT", "20", "--seed", "4",
                 "--grains-out", d / "jp.txt", "--truth-out", d / "jt.csv", "--overwrite")
        _cli("mmt", "invert", f, "--entry", "low", "--entry", "high", "--grain-format",
             "points", "--grains", d / "jp.txt", "--model", "quadrupole",
             "--out", d / "joint.csv")
    else:
        raise SystemExit(f"unknown step {step!r}: expected one of {', '.join(STEPS)}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", default=",".join(STEPS))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    steps = args.steps.split(",")
    if "NUMBA_CACHE_DIR" not in os.environ:
        os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-")
    records = _install_recorder()
    t0 = time.perf_counter()
    per_step = {}
    with tempfile.TemporaryDirectory() as tmp:
        for step in steps:
            s0 = time.perf_counter()
            run_step(step, Path(tmp))
            per_step[step] = time.perf_counter() - s0
    total_wall = time.perf_counter() - t0
    by_kernel: dict[str, dict] = {}
    for r in records:
        k = by_kernel.setdefault(r["kernel"], {"sigs": [], "wall": 0.0, "cpu": 0.0})
        k["sigs"].append(r["args"])
        k["wall"] += r["wall"]
        k["cpu"] += r["cpu"]
    print(f"NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']}")
    print(f"{'kernel':45s} {'n':>3s} {'wall s':>7s} {'cpu s':>7s}")
    for name, k in sorted(by_kernel.items(), key=lambda kv: -kv[1]["cpu"]):
        if k["cpu"] < 0.05:
            continue
        print(f"{name:45s} {len(k['sigs']):3d} {k['wall']:7.1f} {k['cpu']:7.1f}")
    print(f"{'total compile':45s} {len(records):3d} {sum(r['wall'] for r in records):7.1f} "
          f"{sum(r['cpu'] for r in records):7.1f}")
    print("per step wall s: " + ", ".join(f"{s} {t:.1f}" for s, t in per_step.items()))
    print(f"run wall s: {total_wall:.1f}")
    if args.json:
        args.json.write_text(json.dumps({"records": records, "per_step": per_step,
                                         "wall": total_wall}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
