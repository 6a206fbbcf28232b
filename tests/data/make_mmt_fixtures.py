"""Writes the MMT community-format fixtures beside this script, as the community's tools write
them (run once; the files are committed): the multipole library's MetaDict JSON (json.dump)
and MagneticSample NPZ (np.savez; Bz from choclo's dipole, 1 nT noise), a point list
(numpy.savetxt's default %.18e), and a Dragonfly connected-components export (latin-1, ';',
CRLF, trailing ';', extra columns)."""

import json
from pathlib import Path

import choclo.dipole
import numpy as np

HERE = Path(__file__).parent
rng = np.random.default_rng(13)
meta = {"Scan height Hz": 2e-06, "Scan area x-dimension Sx": 2e-05,
        "Scan area y-dimension Sy": 1.6e-05, "Scan x-step Sdx": 1e-06, "Scan y-step Sdy": 1e-06,
        "Time stamp": "20240101-120000", "Sensor origin x": 0.0, "Sensor origin y": 0.0,
        "Number of particles": 3}
with open(HERE / "MetaDict_mpe_demo.json", "w") as f:
    json.dump(meta, f)
pos = np.array([[5e-6, 4e-6, -3e-6], [14e-6, 10e-6, -4e-6], [9e-6, 12e-6, -6e-6]])
vol = np.array([2e-18, 4e-18, 6e-18])
mom = np.array([[1e-14, -2e-14, 1.5e-14], [-2e-14, 1e-14, 3e-14], [3e-14, 2e-14, -1e-14]])
x = np.arange(20) * 1e-6
y = np.arange(16) * 1e-6
bz = np.zeros((16, 20))
for j, yy in enumerate(y):
    for i, xx in enumerate(x):
        bz[j, i] = sum(choclo.dipole.magnetic_u(xx, yy, 2e-6, *p, *m)
                       for p, m in zip(pos, mom, strict=True))
bz += 1e-9 * rng.standard_normal(bz.shape)
np.savez(HERE / "MagneticSample_mpe_demo", Bz_array=bz, particle_positions=pos,
         dipole_moments=mom, volumes=vol, identifier=np.array([1.0, 2.0, 3.0]))
np.savetxt(HERE / "grains_points.txt", np.c_[pos, vol, [1, 2, 3]])
rows = [("Label Index", "Voxel count", "Volume (mm³)", "Surface area (mm²)",
         "Center Of Mass X (mm)", "Center Of Mass Y (mm)", "Center Of Mass Z (mm)")]
for label, n, v, z in ((1, 412, 3.4e-8, 0.1520), (2, 3, 2.5e-10, 0.1610),
                       (3, 1033, 8.5e-8, 0.1475), (4, 57, 4.7e-9, 0.1555)):
    rows.append((str(label), str(n), f"{v:.6E}", f"{4.1 * v ** (2 / 3):.6E}",
                 f"{0.010 + 0.005 * label:.6f}", f"{0.020 - 0.003 * label:.6f}", f"{z:.6f}"))
text = "".join(";".join(r) + ";\r\n" for r in rows)
(HERE / "dragonfly_components.csv").write_bytes(text.encode("latin-1"))
