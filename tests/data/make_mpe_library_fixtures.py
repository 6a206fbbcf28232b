"""Writes reference files made by the multipole library itself (`mmt_multipole_inversion`, MIT
licence, D. Cortés-Ortuño, K. Fabian, L. V. de Groot): its own sample files and its own
inversions of them, which tests/test_mpe_library_referee.py holds smm-daq's multipole models
and importer against. Run once; the files are committed. Not run by the tests, and not part of
the product: it needs the library importable, which the project's environment cannot install
(its PyPI release requires Python < 3.11 and numpy < 1.23).

    PYTHONPATH=<library source at GitHub 2d0ac62> python make_mpe_library_fixtures.py current
    PYTHONPATH=<library source at GitHub 2d0ac62> python make_mpe_library_fixtures.py volume
    PYTHONPATH=<library 1.0 sdist from PyPI> python make_mpe_library_fixtures.py v1.0

(the library's sources only; its compiled CUDA part is not used). `current` writes, through
the library's `MagneticSample.save_data` and `MultipoleInversion`:

* `mpe_lib_point_*`: four point sources with dipole, quadrupole and octupole moments, scanned
  by point sensors from a grid whose lower-left sensor is off the origin; the library's
  octupole inversion of that noise-free scan, with its covariance for σ = 1 nT.
* `mpe_lib_area_*`: the same sources' dipole and quadrupole moments, scanned by 1.4 × 1 µm
  area sensors ("Sensor dimensions", half-lengths, added to the JSON as the library's users
  do), the scan made by the library's area-sensor forward matrix; its quadrupole inversion.

`volume` writes, the same way:

* `mpe_lib_volume_*`: the same sources' dipole and quadrupole moments, scanned by volume
  sensors 1.4 × 1 × 2 µm ("Sensor dimensions" [0.7, 0.5, 1] µm, half-lengths), the scan made by
  the library's volume-sensor forward matrix (`spherical_harmonics_basis_volume`); its
  quadrupole inversion with its covariance; the geometry it used (`scan_positions`,
  `sensor_dims`), some rows of its forward matrix (`Q_rows`, the sensors `Q_index`); and
  `InvMagQuad_mpe_lib_volume.npz`, its results as its own `save_multipole_moments` writes them.

`v1.0` writes `mpe_lib_v1_*`: dipoles scanned by the PyPI release, whose JSON names the grid's
lower-left sensor "Scan origin x"/"Scan origin y" (renamed "Sensor origin x/y" later).
"""

import json
import sys
from pathlib import Path

import numpy as np
from mmt_multipole_inversion import MagneticSample, MultipoleInversion

HERE = Path(__file__).parent
rng = np.random.default_rng(2026)
N = 4
POSITIONS = np.column_stack([rng.uniform(8e-6, 26e-6, N), rng.uniform(2e-6, 18e-6, N),
                             -rng.uniform(2e-6, 6e-6, N)])
VOLUMES = rng.uniform(1e-18, 8e-18, N)
DIPOLES = rng.normal(0.0, 1e-14, (N, 3))
QUADRUPOLES = rng.normal(0.0, 1e-20, (N, 5))
OCTUPOLES = rng.normal(0.0, 1e-26, (N, 7))
GRID = {"Hz": 2e-6, "Sx": 34e-6, "Sy": 26e-6, "Sdx": 1e-6, "Sdy": 1e-6,
        "Lx": 34e-6, "Ly": 26e-6, "Lz": 8e-6}
ORIGIN = (2e-6, -3e-6)


def current() -> None:
    s = MagneticSample(**GRID, sensor_origin=ORIGIN)
    s.generate_particles_from_array(POSITIONS, DIPOLES, VOLUMES,
                                    quadrupole_moments=QUADRUPOLES,
                                    octupole_moments=OCTUPOLES)
    s.generate_measurement_mesh()
    s.save_data(filename="mpe_lib_point", basedir=HERE)
    inv = MultipoleInversion(HERE / "MetaDict_mpe_lib_point.json",
                             HERE / "MagneticSample_mpe_lib_point.npz",
                             expansion_limit="octupole")
    inv.compute_inversion(method="np_pinv", sigma_field_noise=1e-9, rcond=1e-30)
    np.savez(HERE / "mpe_lib_point_reference.npz",
             true_multipole_moments=np.hstack([DIPOLES, QUADRUPOLES, OCTUPOLES]),
             inv_multipole_moments=inv.inv_multipole_moments,
             inv_moments_std=inv.inv_moments_std,
             covariance_matrix=inv.covariance_matrix)

    # area sensors: the JSON and NPZ as save_data writes them, the half-lengths added to the
    # JSON, and Bz from the library's own area-sensor forward matrix
    s = MagneticSample(**GRID, sensor_origin=ORIGIN)
    s.generate_particles_from_array(POSITIONS, DIPOLES, VOLUMES,
                                    quadrupole_moments=QUADRUPOLES)
    s.generate_measurement_mesh()
    s.save_data(filename="mpe_lib_area", basedir=HERE)
    meta_path = HERE / "MetaDict_mpe_lib_area.json"
    meta = json.loads(meta_path.read_text())
    meta["Sensor dimensions"] = [0.7e-6, 0.5e-6]
    meta_path.write_text(json.dumps(meta))
    npz_path = HERE / "MagneticSample_mpe_lib_area.npz"
    forward = MultipoleInversion(meta_path, npz_path, expansion_limit="quadrupole",
                                 sus_functions_module="spherical_harmonics_basis_area")
    forward.generate_forward_matrix()
    truth = np.hstack([DIPOLES, QUADRUPOLES])
    bz = (forward.Q @ truth.reshape(-1)).reshape(forward.Ny_surf, forward.Nx_surf)
    arrays = dict(np.load(npz_path))
    arrays["Bz_array"] = bz
    np.savez(npz_path, **arrays)
    inv = MultipoleInversion(meta_path, npz_path, expansion_limit="quadrupole",
                             sus_functions_module="spherical_harmonics_basis_area")
    inv.compute_inversion(method="np_pinv", sigma_field_noise=1e-9, rcond=1e-30)
    np.savez(HERE / "mpe_lib_area_reference.npz", true_multipole_moments=truth,
             inv_multipole_moments=inv.inv_multipole_moments,
             inv_moments_std=inv.inv_moments_std)


def volume() -> None:
    s = MagneticSample(**GRID, sensor_origin=ORIGIN)
    s.generate_particles_from_array(POSITIONS, DIPOLES, VOLUMES,
                                    quadrupole_moments=QUADRUPOLES)
    s.generate_measurement_mesh()
    s.save_data(filename="mpe_lib_volume", basedir=HERE)
    meta_path = HERE / "MetaDict_mpe_lib_volume.json"
    meta = json.loads(meta_path.read_text())
    meta["Sensor dimensions"] = [0.7e-6, 0.5e-6, 1.0e-6]
    meta_path.write_text(json.dumps(meta))
    npz_path = HERE / "MagneticSample_mpe_lib_volume.npz"
    forward = MultipoleInversion(meta_path, npz_path, expansion_limit="quadrupole",
                                 sus_functions_module="spherical_harmonics_basis_volume")
    forward.generate_forward_matrix()
    truth = np.hstack([DIPOLES, QUADRUPOLES])
    bz = (forward.Q @ truth.reshape(-1)).reshape(forward.Ny_surf, forward.Nx_surf)
    arrays = dict(np.load(npz_path))
    arrays["Bz_array"] = bz
    np.savez(npz_path, **arrays)
    inv = MultipoleInversion(meta_path, npz_path, expansion_limit="quadrupole",
                             sus_functions_module="spherical_harmonics_basis_volume")
    inv.compute_inversion(method="np_pinv", sigma_field_noise=1e-9, rcond=1e-30)
    inv.save_multipole_moments(save_name="mpe_lib_volume", basedir=HERE,
                               save_identifier=True, save_moments_std=True)
    index = np.arange(0, inv.N_sensors, 13)
    np.savez(HERE / "mpe_lib_volume_reference.npz", true_multipole_moments=truth,
             inv_multipole_moments=inv.inv_multipole_moments,
             inv_moments_std=inv.inv_moments_std,
             covariance_matrix=inv.covariance_matrix,
             scan_positions=inv.scan_positions,
             sensor_dims=np.asarray(inv.sensor_dims, dtype=float),
             Q_index=index, Q_rows=inv.Q[index])


def v1_0() -> None:
    s = MagneticSample(**GRID, scan_origin=ORIGIN)
    s.generate_particles_from_array(POSITIONS, DIPOLES, VOLUMES)
    s.generate_measurement_mesh()
    s.save_data(filename="mpe_lib_v1", basedir=HERE)


if __name__ == "__main__":
    {"current": current, "volume": volume, "v1.0": v1_0}[sys.argv[1]]()
