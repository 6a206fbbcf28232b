"""Writes tests/data/mpe-joint/, the files of the README's joint-inversion example, as the MMT
community writes them (run once from the repository root; the files are committed):

* two scans of the SAME grains in the multipole library's format, one at 3 µm and one at 8 µm
  above the sample top, on one grid of point sensors (`MetaDict_low.json`/`_high.json` as
  `json.dump` writes the library's MetaDict, `MagneticSample_low.npz`/`_high.npz` as its
  `save_data` does: `Bz_array` (ny, nx) in T, `particle_positions` (z up, top at 0),
  `dipole_moments` in A m², `volumes` in m³, `identifier`). Bz is each grain's dipole
  (choclo) plus its quadrupole (the potential of docs/mmt-models.md's basis table,
  differentiated by sympy, so independent of smm-daq's kernels), plus the faint field of a
  grain outside the scan, white noise of 40 nT (low) and 10 nT (high), and bad pixels: a dust
  particle saturating the low scan (3 × 3 pixels clipped at 40 µT) and a line glitch of the
  high scan (6 pixels 2 µT low);
* `components.csv`: Dragonfly's connected components of the micro-CT (latin-1, `;`, CRLF, a
  trailing `;`, mm, extra columns; 0.25 µm voxels, so volume = voxel count × 1.5625e-11 mm³),
  CT z up with the sample top at CT z = 152 µm (`--z-top-um 152`: by default the top would be
  taken at the highest grain's top, 1.6 µm below the true one); besides the scanned grains, four
  segmentation specks of 2 to 5 voxels, one of them dust above the top (`--min-voxels 10`
  drops them), and a grain 1 mm beyond the scan (`--crop-to-scan` drops it: even magnetized
  to magnetite's saturation, its field at the scan would stay under a tenth of the noise);
* `bad.png`: the low scan's `smm-daq export --mask-template` image, with the dust spot and the
  glitch painted black as in an image editor (one image for both scans: same grid);
* `truth.csv`: what the scanned grains are (label, position, volume, magnetization in A/m and
  quadrupole coefficients in A m³, the columns named as `mmt invert` names them).
"""

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import choclo.dipole
import numpy as np
import sympy
from PIL import Image

HERE = Path(__file__).parent / "mpe-joint"
rng = np.random.default_rng(20261206)
MU0 = 4e-7 * np.pi
ORIGIN = (20e-6, 15e-6)  # lower-left sensor, m
NX, NY, STEP = 40, 32, 1e-6
HEIGHTS = {"low": 3e-6, "high": 8e-6}
NOISE = {"low": 40e-9, "high": 10e-9}
TIME_STAMPS = {"low": "20261206-023105", "high": "20261206-023148"}  # as the library writes
Z_TOP_CT = 152e-6  # CT z of the sample's top surface, m
VOXEL = 0.25e-6  # CT voxel edge, m
N_GRAINS = 8


def grains() -> tuple[np.ndarray, np.ndarray]:
    """Positions (z up, top at 0) and volumes (whole voxels) of grains under the scan, at
    least 6 µm apart, each wholly below the top."""
    pos: list[np.ndarray] = []
    vols: list[float] = []
    while len(pos) < N_GRAINS:
        p = np.array([rng.uniform(25e-6, 55e-6), rng.uniform(19e-6, 42e-6),
                      -rng.uniform(2.5e-6, 7e-6)])
        v = round(rng.uniform(1e-18, 8e-18) / VOXEL**3) * VOXEL**3
        radius = np.cbrt(3 * v / (4 * np.pi))
        if p[2] + radius < -0.5e-6 and all(np.linalg.norm(p - q) > 6e-6 for q in pos):
            pos.append(p)
            vols.append(v)
    return np.array(pos), np.array(vols)


def quadrupole_bz() -> object:
    """Bz (T) at a sensor of the five quadrupole terms (A m³) of a source: −μ0 ∂ψ/∂z with
    ψ = Σ q_k S_k(r) / (4π r⁵), r = sensor − source, S_k as docs/mmt-models.md tabulates."""
    x, y, z = sympy.symbols("x y z", real=True)
    q = sympy.symbols("q0:5", real=True)
    s = [(2 * z**2 - x**2 - y**2) / sympy.sqrt(6), sympy.sqrt(2) * x * z,
         sympy.sqrt(2) * y * z, (x**2 - y**2) / sympy.sqrt(2), sympy.sqrt(2) * x * y]
    r5 = (x**2 + y**2 + z**2) ** sympy.Rational(5, 2)
    psi = sum(qk * sk for qk, sk in zip(q, s, strict=True)) / (4 * sympy.pi * r5)
    return sympy.lambdify((x, y, z, *q), -sympy.diff(psi, z) * MU0, "numpy")


def scan_bz(name: str, pos: np.ndarray, dip: np.ndarray, quad: np.ndarray,
            far: tuple[np.ndarray, np.ndarray], bz_q: object) -> np.ndarray:
    x = ORIGIN[0] + STEP * np.arange(NX)
    y = ORIGIN[1] + STEP * np.arange(NY)
    gx, gy = np.meshgrid(x, y)
    gz = np.full_like(gx, HEIGHTS[name])
    bz = np.zeros_like(gx)
    dipole = np.vectorize(choclo.dipole.magnetic_u)
    for p, m, qq in zip(pos, dip, quad, strict=True):
        bz += dipole(gx, gy, gz, *p, *m)
        bz += bz_q(gx - p[0], gy - p[1], gz - p[2], *qq)
    bz += dipole(gx, gy, gz, *far[0], *far[1])
    return bz + NOISE[name] * rng.standard_normal(bz.shape)


def write_scan(name: str, bz: np.ndarray, pos: np.ndarray, dip: np.ndarray,
               vol: np.ndarray, labels: np.ndarray) -> None:
    meta = {"Scan height Hz": HEIGHTS[name], "Scan area x-dimension Sx": NX * STEP,
            "Scan area y-dimension Sy": NY * STEP, "Scan x-step Sdx": STEP,
            "Scan y-step Sdy": STEP, "Time stamp": TIME_STAMPS[name],
            "Sensor origin x": ORIGIN[0], "Sensor origin y": ORIGIN[1],
            "Number of particles": len(labels)}
    with open(HERE / f"MetaDict_{name}.json", "w") as f:
        json.dump(meta, f)
    np.savez(HERE / f"MagneticSample_{name}", Bz_array=bz, particle_positions=pos,
             dipole_moments=dip, volumes=vol, identifier=labels)


def write_components(pos: np.ndarray, vol: np.ndarray, labels: np.ndarray,
                     far: np.ndarray, far_vol: float) -> None:
    """Dragonfly's export: components in CT coordinates (mm, z up, top at Z_TOP_CT) in label
    order, the grains, the far grain and the specks interleaved as segmentation numbers them."""
    rows = [(int(lab), p, round(v / VOXEL**3)) for lab, p, v in zip(labels, pos, vol,
                                                                      strict=True)]
    rows += [(11, far, round(far_vol / VOXEL**3)),
             (3, np.array([31.0e-6, 27.0e-6, 0.3e-6]), 3),  # dust on the top surface
             (6, np.array([48.5e-6, 22.0e-6, -4.1e-6]), 2),
             (8, np.array([27.2e-6, 40.3e-6, -6.6e-6]), 5),
             (13, np.array([52.6e-6, 35.9e-6, -1.2e-6]), 4)]
    header = ("Label Index", "Voxel count", "Volume (mm³)", "Surface area (mm²)",
              "Center Of Mass X (mm)", "Center Of Mass Y (mm)", "Center Of Mass Z (mm)",
              "Sphericity")
    lines = [header]
    for lab, p, n in sorted(rows, key=lambda r: r[0]):
        v_mm3 = n * (VOXEL * 1e3) ** 3
        lines.append((str(lab), str(n), f"{v_mm3:.6E}", f"{5.2 * v_mm3 ** (2 / 3):.6E}",
                      f"{p[0] * 1e3:.7f}", f"{p[1] * 1e3:.7f}", f"{(Z_TOP_CT + p[2]) * 1e3:.7f}",
                      f"{rng.uniform(0.55, 0.9):.4f}"))
    text = "".join(";".join(cells) + ";\r\n" for cells in lines)
    (HERE / "components.csv").write_bytes(text.encode("latin-1"))


def write_mask(bad: np.ndarray) -> None:
    """The low scan's template from `smm-daq export --mask-template`, bad pixels painted
    black (image row 0 is the highest y)."""
    with tempfile.TemporaryDirectory() as tmp:
        h5, png = Path(tmp) / "s.h5", Path(tmp) / "low_mask.png"
        for args in (["import", "mpe", str(HERE / "MetaDict_low.json"),
                      str(HERE / "MagneticSample_low.npz"), "--out", str(h5), "--name", "low"],
                     ["export", str(h5), "--entry", "low", "--mask-template", str(png)]):
            subprocess.run([sys.executable, "-m", "smm_daq.cli.main", *args], check=True)
        image = np.array(Image.open(png).convert("RGB"))
    image[bad[::-1]] = 0
    Image.fromarray(image, "RGB").save(HERE / "bad.png")


def main() -> None:
    HERE.mkdir(exist_ok=True)
    pos, vol = grains()
    labels = np.array([1, 2, 4, 5, 7, 9, 10, 12])  # 3, 6, 8, 13: specks; 11: the far grain
    direction = rng.standard_normal((N_GRAINS, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    magnetization = rng.uniform(2e3, 8e3, N_GRAINS)[:, None] * direction  # A/m
    dip = magnetization * vol[:, None]
    quad = rng.normal(0.0, 1e-20, (N_GRAINS, 5))  # A m³
    far = (np.array([1060e-6, 30e-6, -4e-6]), np.array([1e-14, -2e-14, 1e-14]))
    bz_q = quadrupole_bz()
    bad = {"low": np.zeros((NY, NX), bool), "high": np.zeros((NY, NX), bool)}
    bad["low"][20:23, 8:11] = True  # dust: the lock-in overloads
    bad["high"][6, 27:33] = True  # a glitch of the stage along one line
    scans = {name: scan_bz(name, pos, dip, quad, far, bz_q) for name in ("low", "high")}
    scans["low"][bad["low"]] = 40e-6
    scans["high"][bad["high"]] -= 2e-6
    for name, bz in scans.items():
        write_scan(name, bz, pos, dip, vol, labels)
    write_components(pos, vol, labels, far[0], 6e-18)
    write_mask(bad["low"] | bad["high"])
    names = ["mx_A_per_m", "my_A_per_m", "mz_A_per_m", "q20_Am3", "q21c_Am3", "q21s_Am3",
             "q22c_Am3", "q22s_Am3"]
    np.savetxt(HERE / "truth.csv", np.c_[labels, pos / 1e-6, vol / 1e-18, magnetization, quad],
               delimiter=",", comments="", fmt=["%d"] + ["%.10g"] * 4 + ["%.10g"] * 8,
               header=",".join(["grain", "x_um", "y_um", "z_um", "volume_um3", *names]))


if __name__ == "__main__":
    main()
