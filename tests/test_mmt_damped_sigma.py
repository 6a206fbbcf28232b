"""A damped fit's residual overstates the noise: `mmt invert --damping` without --sigma-nT
warns that σ, and every SD with it, comes out too large (cuboid and point models alike)."""

from __future__ import annotations

from pathlib import Path

import pytest

from smm_daq.cli.main import main

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"
CUBOIDS = "grain,x_um,y_um,z_um,dx_um,dy_um,dz_um\n1,5,4,-3,1.2,1.4,1.2\n2,14,10,-4,1.6,1.5,1.7\n"
WARNING = "with the noise σ estimated from the residual"


@pytest.mark.parametrize("fmt", ["cuboids", "mpe"])
def test_damping_with_sigma_from_the_residual_is_warned_of(tmp_path, capsys, fmt):
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    grains = NPZ
    if fmt == "cuboids":
        grains = tmp_path / "g.csv"
        grains.write_text(CUBOIDS)
    common = ["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", fmt,
              "--grains", str(grains)]
    for n, (more, warned) in enumerate(((["--damping", "1e-3"], True),
                                        (["--damping", "1e-3", "--sigma-nT", "1"], False),
                                        ([], False))):
        capsys.readouterr()
        assert main([*common, *more, "--out", str(tmp_path / f"r{n}.csv"),
                     "--result-entry", f"r{n}"]) == 0
        err = capsys.readouterr().err
        assert (WARNING in err) == warned, (more, err)
        if warned:
            assert "smm-daq: warning: damping 0.001 (--damping)" in err
            assert "expected the noise σ given (--sigma-nT" in err
