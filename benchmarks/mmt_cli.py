"""`smm-daq mmt invert` as a user runs it: whole processes, time and peak memory per stage,
against the public cuboid library `mmt_dipole_cuboid_inversion` on the same input files.

    python benchmarks/mmt_cli.py [--tutorial DIR] [--public-python PATH] [--cases tutorial,medium]

Cases: the real QDM tutorial scan (the MMT community's files, by default from
../shared/data/mmt-tutorial-qdm beside the checkout or tests/data/mmt-tutorial-qdm), and the
medium synthetic sample made by `smm-daq mmt synth --size-um 200,200 --thickness-um 50
--density-per-mm3 1e5 --height-um 1 --step-um 1 --sensor-size-um 1,1 --noise-nT 5 --seed 2`
(written out in the library's formats too). Start-up is `smm-daq --help` and `smm-daq info`.

Stages of one process are checkpoints inside it (wall clock from the parent's launch, so the
interpreter's start counts): start-up (until the command's handler runs), reading (scan and
grains), Green + QR (the library: Green's matrix), solve (the library: pinv), fitted map,
writing (to the process's end). Memory is the peak resident set size so far at each
checkpoint (ru_maxrss), the last one the process's peak (from wait4). The library runs only
where it is importable by --public-python (default: this interpreter); it is not a
dependency of smm-daq (it needs Python < 3.11: install its sdist with
`pip install --no-deps --no-build-isolation --ignore-requires-python` into a side venv that has
cython, poetry-core, numpy, scipy and numba). This file imports only the standard library, so
that interpreter runs it too.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MEDIUM = ["--size-um", "200,200", "--thickness-um", "50", "--density-per-mm3", "1e5",
          "--height-um", "1", "--step-um", "1", "--sensor-size-um", "1,1", "--noise-nT", "5",
          "--seed", "2"]
STAGES = ("start-up", "reading", "Green + QR", "solve", "fitted map", "writing")
TUTORIAL_FILES = ("class_QDM_result2.txt", "tutorial_scan_params.json",
                  "class_cuboid_result2.txt")
_CHECKPOINTS = "SMM_BENCH_CHECKPOINTS"


def _mark(stage: str, at: float | None = None) -> None:
    """Append a checkpoint (stage that ends now, wall time, peak RSS so far) for the parent."""
    path = os.environ.get(_CHECKPOINTS)
    if path:
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps([stage, time.time() if at is None else at, rss]) + "\n")


# --- inside a measured process ----------------------------------------------------------------


def _probe_smm(argv: list[str]) -> int:
    """`smm-daq ARGV` with checkpoints: the stages' functions wrapped where the command looks
    them up (it imports them when it runs), once the command line is parsed, so that their
    imports count in their stages."""
    from smm_daq.cli import main as cli_main

    parse = cli_main._Parser.parse_args

    def parse_args(self, *a, **k):  # the outermost parser's result: the handler runs next
        out = parse(self, *a, **k)
        if getattr(out, "func", None) is not None and self.prog == "smm-daq":
            _mark("start-up")
            _wrap_stages()
        return out

    cli_main._Parser.parse_args = parse_args
    sys.argv = ["smm-daq", *argv]
    return cli_main.main()  # as the installed command calls it, with its end of program


def _wrap_stages() -> None:
    from smm_daq.analysis import grains
    from smm_daq.analysis.mmt.solver import inversion

    read_grains = grains.read_grains

    def timed_read_grains(*a, **k):
        out = read_grains(*a, **k)
        _mark("reading")
        return out

    invert_map = inversion.invert_map

    def timed_invert_map(*a, **k):
        result = invert_map(*a, **k)
        end = time.time()
        t = result.timings
        green_end = end - t["total_s"] + t["green_and_qr_s"]
        _mark("Green + QR", green_end)
        _mark("solve", end - t["forward_s"])  # with the statistics after the fitted map
        _mark("fitted map", end)
        return result

    grains.read_grains = timed_read_grains
    inversion.invert_map = timed_invert_map


def _probe_public(scan: str, params: str, cuboids: str, out: str) -> int:
    """The library's documented pipeline (Cython Green's matrix, scipy pinv), stage by stage."""
    import numpy as np
    from mmt_dipole_cuboid_inversion import DipoleCuboidInversion

    _mark("start-up")
    inv = DipoleCuboidInversion.from_json(params, verbose=False)
    inv.read_files(scan, cuboids, cuboid_scaling_factor=1e-6)
    if np.all(inv.cuboids[:, 2] > 0):  # z as depth: the library's z-down frame, negative height
        inv.scan_height = -abs(inv.scan_height)
    inv.set_scan_domain(gen_sd_mesh_from="sensor_center_domain")
    _mark("reading")
    inv.prepare_matrix(method="cython")
    _mark("Green + QR")
    inv.calculate_inverse(method="scipy_pinv")
    _mark("solve")
    fitted = inv.forward_field()
    _mark("fitted map")
    inv.save_results(Path(out) / "public_mag.npy", Path(out) / "public_keys.npy")
    np.save(Path(out) / "public_fitted.npy", fitted)
    return 0


# --- the parent --------------------------------------------------------------------------------


def _run(cmd: list[str], *, env: dict[str, str] | None = None, quiet: bool = True
         ) -> tuple[float, float, list[tuple[str, float, float]], float]:
    """Wall time (s), peak RSS (MB), checkpoints (stage, s since launch, MB) and CPU time (s,
    user + system over all threads) of a process."""
    with tempfile.NamedTemporaryFile("r", suffix=".jsonl") as marks:
        env = {**os.environ, **(env or {}), _CHECKPOINTS: marks.name}
        start = time.time()
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE if quiet else None,
                                stderr=subprocess.PIPE, text=True)
        _, err = proc.communicate()
        wall = time.time() - start
        # the child has been reaped by communicate(); its peak is the largest among children
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        peak = usage.ru_maxrss / 1024
        cpu = usage.ru_utime + usage.ru_stime
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err}")
        points = [json.loads(line) for line in marks.read().splitlines() if line.strip()]
    return wall, peak, [(s, t - start, m) for s, t, m in points], cpu


def _isolated(cmd: list[str], **kw
              ) -> tuple[float, float, list[tuple[str, float, float]], float]:
    """`_run` in a fresh helper process, so that RUSAGE_CHILDREN is this command's alone."""
    helper = [sys.executable, __file__, "_measure", json.dumps({"cmd": cmd, **kw})]
    done = subprocess.run(helper, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    wall, peak, points, cpu = json.loads(done.stdout.splitlines()[-1])
    return wall, peak, [tuple(p) for p in points], cpu


def _stages(wall: float, peak: float, points: list, cpu: float
            ) -> dict[str, tuple[float, float]]:
    """{stage: (seconds, peak MB so far)} from the checkpoints; 'writing' ends at the exit;
    'CPU' is the process's CPU time over all threads (wall time hides load on the machine)."""
    out: dict[str, tuple[float, float]] = {}
    last = 0.0
    for stage, at, mb in points:
        out[stage] = (at - last, mb)
        last = at
    out["writing"] = (wall - last, peak)
    out["total"] = (wall, peak)
    out["CPU"] = (cpu, peak)
    return out


def _smm() -> list[str]:
    return [sys.executable, __file__, "_smm"]


def _public_available(python: str) -> bool:
    done = subprocess.run([python, "-c", "import mmt_dipole_cuboid_inversion"],
                          capture_output=True)
    return done.returncode == 0


def _tutorial_dir(given: str | None) -> Path:
    candidates = [Path(given)] if given else [
        REPO.parent / "shared" / "data" / "mmt-tutorial-qdm",
        REPO / "tests" / "data" / "mmt-tutorial-qdm",
    ]
    for d in candidates:
        if all((d / f).exists() for f in TUTORIAL_FILES):
            return d
    raise SystemExit(f"the QDM tutorial files {TUTORIAL_FILES} are not in any of "
                     f"{[str(c) for c in candidates]}; give --tutorial DIR")


def _prepare_tutorial(src: Path, work: Path) -> tuple[list[str], tuple[str, str, str]]:
    h5 = work / "qdm.h5"
    h5.unlink(missing_ok=True)  # a --work folder used before
    subprocess.run([*_smm(), "import", "mmt-scan", str(src / TUTORIAL_FILES[0]), "--params",
                    str(src / TUTORIAL_FILES[1]), "--out", str(h5), "--name", "qdm"],
                   check=True, capture_output=True)
    argv = ["mmt", "invert", str(h5), "--entry", "qdm", "--grains",
            str(src / TUTORIAL_FILES[2]), "--grain-format", "mmt", "--out",
            str(work / "qdm_result.csv"), "--overwrite"]
    return argv, tuple(str(src / f) for f in TUTORIAL_FILES)  # type: ignore[return-value]


def _prepare_medium(work: Path) -> tuple[list[str], tuple[str, str, str]]:
    h5 = work / "medium.h5"
    grains = work / "medium_grains.csv"
    for made in (h5, grains, work / "medium_truth.csv"):  # a --work folder used before
        made.unlink(missing_ok=True)
    subprocess.run([*_smm(), "mmt", "synth", *MEDIUM, "--out", str(h5), "--grains-out",
                    str(grains), "--truth-out", str(work / "medium_truth.csv")],
                   check=True, capture_output=True)
    # the same scan and grains in the library's formats
    code = f"""
import csv, json
import numpy as np
from smm_daq.storage.nexus import read_map
m = read_map({str(h5)!r}, "synthetic")
np.savetxt({str(work / "medium_scan.txt")!r}, m.bz)
w, l = m.sensor_size
json.dump({{"Sensor center domain LL-x-y": [float(m.x[0]), float(m.y[0])],
           "Sensor center domain UR-x-y": [float(m.x[-1]), float(m.y[-1])],
           "Scan spacing": float(m.x[1] - m.x[0]), "Scan delta-x": w / 2, "Scan delta-y": l / 2,
           "Scan area": w * l, "Scan height": float(m.height)}},
          open({str(work / "medium_params.json")!r}, "w"))
rows = list(csv.DictReader(open({str(grains)!r})))
np.savetxt({str(work / "medium_cuboids.txt")!r}, [[float(r["x_um"]), float(r["y_um"]),
           -float(r["z_um"]), float(r["dx_um"]) / 2, float(r["dy_um"]) / 2,
           float(r["dz_um"]) / 2, int(r["grain"])] for r in rows])
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    argv = ["mmt", "invert", str(h5), "--entry", "synthetic", "--grains", str(grains),
            "--out", str(work / "medium_result.csv"), "--overwrite"]
    return argv, (str(work / "medium_scan.txt"), str(work / "medium_params.json"),
                  str(work / "medium_cuboids.txt"))


def _agreement(result_csv: Path, public_dir: Path) -> str:
    """Largest |ours − library| over our SD, across grains and components (same grain order:
    both follow the grain file). The library's z axis points down for these files."""
    code = f"""
import csv
import numpy as np
rows = list(csv.DictReader(open({str(result_csv)!r})))
m = np.array([[float(r[k]) for k in ("mx_A_per_m", "my_A_per_m", "mz_A_per_m")] for r in rows])
sd = np.array([[float(r[k]) for k in ("sd_mx_A_per_m", "sd_my_A_per_m", "sd_mz_A_per_m")]
               for r in rows])
pub = np.load({str(public_dir / "public_mag.npy")!r})[:, 1:] * [1, 1, -1]
ok = np.isfinite(sd) & (sd > 0)
print(f"{{np.max(np.abs(m - pub)[ok] / sd[ok]):.3g}}")
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else "n/a"


def _print_case(name: str, ours: dict, public: dict | None, agree: str | None) -> None:
    print(f"\n{name}")
    head = f"  {'stage':12s} {'smm-daq s':>10s} {'peak MB':>8s}"
    if public:
        head += f" {'library s':>10s} {'peak MB':>8s} {'time ×':>8s}"
    print(head)
    for stage in (*STAGES, "total", "CPU"):
        t, mb = ours.get(stage, (float("nan"), float("nan")))
        line = f"  {stage:12s} {t:10.2f} {mb:8.0f}"
        if public:
            pt, pmb = public.get(stage, (float("nan"), float("nan")))
            ratio = pt / t if t > 0 else float("nan")
            line += f" {pt:10.2f} {pmb:8.0f} {ratio:8.1f}"
        print(line)
    if public:
        t, mb = ours["total"]
        pt, pmb = public["total"]
        print(f"  end to end: {pt / t:.1f}× faster, {mb / pmb:.2f}× the library's peak memory")
    if agree is not None:
        print(f"  largest |smm-daq − library| / smm-daq SD over grains and axes: {agree}")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_smm":
        sys.exit(_probe_smm(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "_public":
        sys.exit(_probe_public(*sys.argv[2:6]))
    if len(sys.argv) > 1 and sys.argv[1] == "_measure":
        spec = json.loads(sys.argv[2])
        print(json.dumps(_run(spec.pop("cmd"), **spec)))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tutorial", help="directory of the QDM tutorial files")
    parser.add_argument("--public-python", default=sys.executable,
                        help="an interpreter that imports mmt_dipole_cuboid_inversion")
    parser.add_argument("--cases", default="tutorial,medium")
    parser.add_argument("--work", help="keep the inputs and results here (default: temporary)")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="mmt_cli_"))
    work.mkdir(parents=True, exist_ok=True)
    if shutil.which(args.public_python) is None:
        parser.error(f"--public-python {args.public_python!r}: no such interpreter; expected "
                     "the python of a venv where mmt_dipole_cuboid_inversion is installed")
    public = _public_available(args.public_python)
    smm = shutil.which("smm-daq", path=str(Path(sys.executable).parent)) or "smm-daq"
    print(f"cores {os.cpu_count()}; smm-daq {smm}; public library "
          f"{'with ' + args.public_python if public else 'not installed (ours only)'}")

    inputs = {}
    if "tutorial" in cases:
        inputs["tutorial"] = _prepare_tutorial(_tutorial_dir(args.tutorial), work)
    if "medium" in cases:
        inputs["medium"] = _prepare_medium(work)

    print("\nstart-up (whole process, best of 3)")
    for label, cmd in (("smm-daq --help", [smm, "--help"]),
                       ("smm-daq info", [smm, "info", inputs[next(iter(inputs))][0][2]]
                        if inputs else [smm, "--version"])):
        best = min(_isolated(cmd)[:2] for _ in range(3))
        print(f"  {label:16s} {best[0]:6.2f} s  {best[1]:6.0f} MB")

    for name, (argv, files) in inputs.items():
        ours = _stages(*_isolated([*_smm(), *argv]))
        theirs = agree = None
        if public:
            out = work / f"public_{name}"
            out.mkdir(exist_ok=True)
            theirs = _stages(*_isolated([args.public_python, __file__, "_public", *files,
                                         str(out)], env={"OMP_NUM_THREADS": "2"}))
            agree = _agreement(Path(argv[argv.index("--out") + 1]), out)
        _print_case(f"{name}: smm-daq {' '.join(argv[:2])}", ours, theirs, agree)
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
