"""`smm-daq import mmt-scan | mpe --overwrite`: an import replaces an earlier import of that
name, whole, as other writers' --overwrite replaces an analysis product; never a scan, nor
an import that other entries were computed from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.storage.nexus import read_map, write_map_entry

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"


def _mpe(h5: Path, height_m: float, tmp_path: Path, *more: str) -> int:
    params = json.loads(JSON.read_text())
    params["Scan height Hz"] = height_m
    meta = tmp_path / f"meta_{height_m:g}.json"
    meta.write_text(json.dumps(params))
    return main(["import", "mpe", str(meta), str(NPZ), "--out", str(h5), "--name", "qdm",
                 *more])


def _mmt_scan(h5: Path, height_m: float, tmp_path: Path, *more: str) -> int:
    m = tmp_path / "map.txt"
    np.savetxt(m, np.arange(12.0).reshape(3, 4) * 1e-6)
    params = {"Sensor center domain LL-x-y": [0.0, 1e-5], "Sensor center domain UR-x-y":
              [3e-6, 1.2e-5], "Scan spacing": 1e-6, "Scan delta-x": 5e-7,
              "Scan delta-y": 5e-7, "Scan height": height_m}
    pj = tmp_path / f"p_{height_m:g}.json"
    pj.write_text(json.dumps(params))
    return main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "qdm", *more])


@pytest.mark.parametrize("importer", [_mpe, _mmt_scan])
def test_an_import_is_replaced_with_overwrite_only(tmp_path, capsys, importer):
    h5 = tmp_path / "s.h5"
    assert importer(h5, 2e-6, tmp_path) == 0
    before = h5.read_bytes()
    capsys.readouterr()
    assert importer(h5, 3e-6, tmp_path) == 2  # the height put right: asked for
    err = capsys.readouterr().err
    assert "entry 'qdm' already exists and is imported data" in err
    assert "--overwrite to replace it" in err
    assert h5.read_bytes() == before
    assert importer(h5, 3e-6, tmp_path, "--overwrite") == 0
    assert read_map(h5, "qdm").height == pytest.approx(3e-6)


@pytest.mark.parametrize("importer", [_mpe, _mmt_scan])
def test_an_import_never_replaces_a_scan_nor_a_source(tmp_path, capsys, importer):
    h5 = tmp_path / "s.h5"
    assert importer(h5, 2e-6, tmp_path) == 0
    m = read_map(h5, "qdm")
    write_map_entry(h5, m.with_bz(m.bz, name="scan"), kind="scan")
    write_map_entry(h5, m.with_bz(m.bz * 2, name="twice", sources=("qdm",)), kind="background")
    before = h5.read_bytes()
    capsys.readouterr()
    # the import's entry is what 'twice' was computed from: replaced, it would mislead
    assert importer(h5, 3e-6, tmp_path, "--overwrite") == 2
    assert "is what 'twice' was computed from" in capsys.readouterr().err
    assert h5.read_bytes() == before
    if importer is _mpe:
        params = tmp_path / "scan.json"
        params.write_text(JSON.read_text())
        assert main(["import", "mpe", str(params), str(NPZ), "--out", str(h5), "--name", "scan",
                     "--overwrite"]) == 2
        assert "holds acquired data (kind 'scan') and is never overwritten" in (
            capsys.readouterr().err)
        assert h5.read_bytes() == before


def test_the_import_options_say_what_overwrite_does(capsys):
    for fmt in ("mpe", "mmt-scan"):
        with pytest.raises(SystemExit):
            main(["import", fmt, "--help"])
        said = " ".join(capsys.readouterr().out.split())
        assert "--overwrite replace an entry of that name holding an earlier import" in said


def test_an_import_an_mmt_result_was_computed_from_is_never_replaced(tmp_path, capsys):
    h5 = tmp_path / "s.h5"
    assert _mpe(h5, 2e-6, tmp_path) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(NPZ), "--sigma-nT", "1", "--out", str(tmp_path / "r.csv")]) == 0
    before = h5.read_bytes()
    capsys.readouterr()
    assert _mpe(h5, 3e-6, tmp_path, "--overwrite") == 2
    assert "is what 'qdm_mmt' was computed from" in capsys.readouterr().err
    assert h5.read_bytes() == before
