"""`smm-daq mmt synth`, `smm-daq mmt invert` and `smm-daq import mmt-scan` end to end."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from smm_daq.analysis.mmt.solver import streams as qr_streams
from smm_daq.cli.main import main
from smm_daq.storage.nexus import list_entries, read_map

HEADERS = ["grain", "mx_A_per_m", "my_A_per_m", "mz_A_per_m", "sd_mx_A_per_m", "sd_my_A_per_m",
           "sd_mz_A_per_m", "moment_Am2", "volume_um3", "depth_um", "ssr_per_um",
           "uncertainty_ratio_pct"]


def test_synth_then_invert_recovers_the_truth(tmp_path, capsys):
    h5, grains, truth, out = (tmp_path / n for n in ("s.h5", "g.csv", "t.csv", "r.csv"))
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "15", "--density-per-mm3", "4e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "10", "--seed", "3"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--sigma-nT", "10", "--out", str(out)]) == 0
    with open(out) as f:
        rows = list(csv.reader(f))
    assert rows[0][: len(HEADERS)] == HEADERS
    with open(truth) as f:
        true = {int(r["grain"]): r for r in csv.DictReader(f)}
    for row in rows[1:]:
        rec = dict(zip(rows[0], row, strict=True))
        t = true[int(rec["grain"])]
        for c in ("mx", "my", "mz"):
            assert abs(float(rec[f"{c}_A_per_m"]) - float(t[f"{c}_A_per_m"])) < 5 * float(
                rec[f"sd_{c}_A_per_m"])
    kinds = {e.name: e.kind for e in list_entries(h5)}
    assert kinds == {"scan": "synthetic", "scan_mmt": "mmt"}
    import h5py

    with h5py.File(h5, "r") as f:
        assert f["scan_mmt/results/device"][()].decode() == "cpu"
        assert f["scan_mmt/process/parameters/model"][()].decode() == "cuboid"
    assert np.nanstd(read_map(h5, "scan_mmt").bz) < 2e-8  # residual ≈ the 10 nT noise


@pytest.mark.parametrize("model", ["cuboid", "dipole"])
def test_synth_scans_with_the_seeds_sensor_by_default(tmp_path, model):
    """Seed 001 §2.1.3 integrates the flux through a 1 × 1 µm loop on the sample surface, as
    `mmt study` models it (0.5 µm above the top, where the grains reach): `mmt synth`'s scan
    is that sensor's unless told otherwise (it had been a point 1 µm above)."""
    from smm_daq.analysis.mmt.study.grid import DEFAULT_HEIGHT_UM, DEFAULT_SENSOR_UM

    h5 = tmp_path / "s.h5"
    assert main(["mmt", "synth", "--model", model, "--out", str(h5), "--grains-out",
                 str(tmp_path / "g"), "--truth-out", str(tmp_path / "t.csv"),
                 "--size-um", "30,30", "--thickness-um", "12", "--density-per-mm3", "2e5"]) == 0
    data = read_map(h5, "synthetic")
    assert DEFAULT_SENSOR_UM == 1.0 and DEFAULT_HEIGHT_UM == 0.5
    assert data.sensor_size == pytest.approx((1e-6, 1e-6), rel=1e-12)
    assert data.height == pytest.approx(0.5e-6, rel=1e-12)


def test_import_mmt_scan_and_bad_input(tmp_path, capsys):
    bz = np.arange(12.0).reshape(3, 4) * 1e-6
    m = tmp_path / "map.txt"
    np.savetxt(m, bz)
    params = {"Sensor center domain LL-x-y": [0.0, 1e-5], "Sensor center domain UR-x-y":
              [3e-6, 1.2e-5], "Scan spacing": 1e-6, "Scan delta-x": 5e-7, "Scan delta-y": 5e-7,
              "Scan height": 4e-6}
    pj = tmp_path / "p.json"
    pj.write_text(json.dumps(params))
    h5 = tmp_path / "f.h5"
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "qdm"]) == 0
    data = read_map(h5, "qdm")
    np.testing.assert_allclose(data.bz, bz)
    np.testing.assert_allclose(data.y, [1e-5, 1.1e-5, 1.2e-5])
    assert data.height == pytest.approx(4e-6) and data.sensor_size == pytest.approx((1e-6, 1e-6))
    params["Scan spacing"] = 2e-6
    pj.write_text(json.dumps(params))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "other"]) == 2
    assert "not a whole number of 'Scan spacing'" in capsys.readouterr().err
    params["Scan spacing"] = 1e-6
    params["Sensor center domain UR-x-y"] = [4e-6, 1.2e-5]
    pj.write_text(json.dumps(params))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "other"]) == 2
    assert "expected 3 × 5 values" in capsys.readouterr().err
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains",
                 str(tmp_path / "none.csv"), "--out", str(tmp_path / "r.csv")]) == 2
    assert "no such grain file" in capsys.readouterr().err
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grains", str(m),
                 "--sensor-size-um", "1,0", "--out", str(tmp_path / "r.csv")]) == 2
    assert "--sensor-size-um" in capsys.readouterr().err


@pytest.mark.parametrize(("given", "said"), [
    ({"Scan delta-x": 5e-7}, "'Scan delta-x' is 5e-07 and 'Scan delta-y' is absent"),
    ({"Scan delta-y": 5e-7}, "'Scan delta-x' is absent and 'Scan delta-y' is 5e-07"),
    ({"Scan delta-x": 5e-7, "Scan delta-y": 0}, "'Scan delta-x' is 5e-07 and 'Scan delta-y' is 0"),
], ids=["x alone", "y alone", "y zero"])
def test_import_mmt_scan_refuses_one_sensor_half_width_alone(tmp_path, capsys, given, said):
    """One half-width without the other is a sensor of no width along the other axis, a line:
    it had been stored as such, and the cuboid model averaged the field along that line
    alone, so an area sensor's map was fitted with the wrong sensor."""
    m, pj, h5 = tmp_path / "map.txt", tmp_path / "p.json", tmp_path / "f.h5"
    np.savetxt(m, np.arange(12.0).reshape(3, 4) * 1e-6)
    pj.write_text(json.dumps({"Sensor center domain LL-x-y": [0.0, 1e-5],
                              "Sensor center domain UR-x-y": [3e-6, 1.2e-5],
                              "Scan spacing": 1e-6, "Scan height": 4e-6, **given}))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "qdm"]) == 2
    err = capsys.readouterr().err
    assert f"p.json: key {said}; expected both sensor half-widths > 0 (an area sensor) or " \
           "neither (a point sensor)" in err
    assert not h5.exists()


@pytest.mark.parametrize(("given", "said"), [
    ({"Scan delta-x": 5e-7, "Scan delta-y": 5e-7, "Scan area": 1.44e-12},
     "key 'Scan area' is 1.44e-12 m², and 'Scan delta-x' 5e-07 and 'Scan delta-y' 5e-07 m "
     "(half-widths) make a sensor of 1e-12 m²; expected them to agree"),
    ({"Scan area": 1e-12}, "key 'Scan area' is 1e-12 m², and 'Scan delta-x' and 'Scan "
     "delta-y' are absent or 0: a point sensor; expected 'Scan area' 0 (or absent)"),
    ({"Scan delta-x": 5e-7, "Scan delta-y": 5e-7, "Scan area": "1e-12"},
     "key 'Scan area' is '1e-12'; expected the sensor's area in m²"),
], ids=["other area", "point with an area", "not a number"])
def test_import_mmt_scan_refuses_a_scan_area_its_half_widths_contradict(tmp_path, capsys,
                                                                         given, said):
    """The cuboid library's "Scan area" is the sensor's, (2 Δx)(2 Δy): one that disagrees
    with the half-widths describes another sensor, and had been ignored. Refused, naming the
    file, the keys and their values; nothing written. The tutorial's own file agrees."""
    m, pj, h5 = tmp_path / "map.txt", tmp_path / "p.json", tmp_path / "f.h5"
    np.savetxt(m, np.arange(12.0).reshape(3, 4) * 1e-6)
    base = {"Sensor center domain LL-x-y": [0.0, 1e-5],
            "Sensor center domain UR-x-y": [3e-6, 1.2e-5], "Scan spacing": 1e-6,
            "Scan height": 4e-6}
    pj.write_text(json.dumps({**base, **given}))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "qdm"]) == 2
    err = capsys.readouterr().err
    assert f"p.json: {said}" in err, err
    assert not h5.exists()
    agreeing = {"Scan delta-x": 5e-7, "Scan delta-y": 5e-7, "Scan area": 1.0000001e-12}
    pj.write_text(json.dumps({**base, **agreeing}))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "qdm"]) == 0
    assert read_map(h5, "qdm").sensor_size == pytest.approx((1e-6, 1e-6))
    # an area written to 3 digits, 0.48 % off the half-widths': within the library's own
    # check (|4 Δx Δy − area| <= 1e-14 m², past which it warns), so read as it reads it
    rounded = {"Scan delta-x": 5.012e-7, "Scan delta-y": 5.012e-7, "Scan area": 1.00e-12}
    pj.write_text(json.dumps({**base, **rounded}))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out", str(h5),
                 "--name", "rounded"]) == 0
    assert read_map(h5, "rounded").sensor_size == pytest.approx((1.0024e-6, 1.0024e-6))


@pytest.mark.parametrize("model", [[], ["--model", "dipole"]], ids=["cuboid", "dipole"])
def test_invert_shows_its_progress_on_stderr(tmp_path, capsys, monkeypatch, model):
    # in one stream, whatever this machine's cores, threading layer and free memory would
    # choose (the blocks' sizes depend on it; the streams' own reports: test_mmt_streams)
    monkeypatch.setattr(qr_streams, "stream_count", lambda *args, **kwargs: 1)
    h5, grains = tmp_path / "s.h5", tmp_path / "g.csv"
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(tmp_path / "t.csv"), "--size-um", "100,80",
                 "--thickness-um", "10", "--density-per-mm3", "1e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "10", "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp_path / "r.csv"), *model]) == 0
    lines = capsys.readouterr().err.splitlines()
    # 101 × 81 sensors in two blocks of the QR, 6,144 and 2,037: a line for each (not a
    # terminal)
    shown = [line for line in lines if line.startswith("Green's matrix and QR:")]
    assert [line[23:29] for line in shown] == [" 75.1%", "100.0%"]
    assert "8181/8181 sensors" in shown[-1]


@pytest.mark.parametrize("model", [[], ["--model", "dipole"]], ids=["cuboid", "dipole"])
def test_a_result_entry_is_never_inverted(tmp_path, capsys, model):
    """Its Bz is the fit's residual, a model's and not a measurement: refused as `subtract`
    refuses it, with nothing written."""
    h5, grains = tmp_path / "s.h5", tmp_path / "g.csv"
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(tmp_path / "t.csv"), "--size-um", "30,30",
                 "--thickness-um", "15", "--density-per-mm3", "4e5", "--height-um", "2",
                 "--step-um", "1", "--noise-nT", "10", "--seed", "3"]) == 0
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp_path / "r.csv")]) == 0
    capsys.readouterr()
    before = h5.read_bytes()
    out = tmp_path / "again.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "scan_mmt", "--grains", str(grains),
                 "--out", str(out), *model]) == 2
    assert ("entry 'scan_mmt' is an MMT result: its Bz is a model's or a fit's residual, not a "
            "measurement; expected a scanned or imported map") in capsys.readouterr().err
    assert h5.read_bytes() == before and not out.exists()


def test_damping_with_tiles_is_refused_before_anything_is_written(tmp_path, capsys):
    """The tiled inversion is undamped: --damping with --tile-um is refused (exit 2), not
    dropped from a result that would then differ from the one asked for."""
    h5, grains, truth, out = (tmp_path / n for n in ("s.h5", "g.csv", "t.csv", "r.csv"))
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "15", "--density-per-mm3", "4e5", "--height-um", "2",
                 "--step-um", "1", "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--damping", "0.01", "--tile-um", "15", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--damping is 0.01 with --tile-um" in err and "undamped" in err
    assert not out.exists() and [e.name for e in list_entries(h5)] == ["scan"]


def test_gpu_with_tiles_is_refused_before_anything_is_written(tmp_path, capsys, monkeypatch):
    """The tiles solve on the CPU: --device gpu with --tile-um is refused (exit 2, naming why)
    rather than computed on the CPU while gpu was asked for. A usable GPU is pretended, so
    the refusal is the option pair's, not a missing GPU's."""
    from smm_daq.analysis.mmt.solver import device

    monkeypatch.setattr(device, "gpu_problem", lambda: None)
    h5, grains, truth, out = (tmp_path / n for n in ("s.h5", "g.csv", "t.csv", "r.csv"))
    assert main(["mmt", "synth", "--out", str(h5), "--name", "scan", "--grains-out",
                 str(grains), "--truth-out", str(truth), "--size-um", "30,30",
                 "--thickness-um", "15", "--density-per-mm3", "4e5", "--height-um", "2",
                 "--step-um", "1", "--seed", "3"]) == 0
    before = h5.read_bytes()
    capsys.readouterr()
    assert main(["mmt", "invert", str(h5), "--entry", "scan", "--grains", str(grains),
                 "--device", "gpu", "--tile-um", "15", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--device is 'gpu' with --tile-um" in err and "CPU" in err
    assert "Traceback" not in err
    assert not out.exists() and h5.read_bytes() == before


@pytest.mark.parametrize("text", ["# only a comment\n", "\xff\xfe not text"],
                         ids=["no map", "not text"])
def test_import_mmt_scan_refusing_a_map_says_the_separators_it_reads(tmp_path, capsys, text):
    """The refusal says what `import mmt-scan --help` says MAP.txt is: commas read too."""
    m = tmp_path / "map.txt"
    m.write_bytes(text.encode("latin-1"))
    params = {"Sensor center domain LL-x-y": [0.0, 0.0], "Sensor center domain UR-x-y":
              [3e-6, 2e-6], "Scan spacing": 1e-6, "Scan height": 4e-6}
    pj = tmp_path / "p.json"
    pj.write_text(json.dumps(params))
    assert main(["import", "mmt-scan", str(m), "--params", str(pj), "--out",
                 str(tmp_path / "f.h5"), "--name", "qdm"]) == 2
    err = capsys.readouterr().err
    assert "expected a matrix of Bz in T, whitespace- or comma-separated" in err, err
    assert not (tmp_path / "f.h5").exists()


@pytest.mark.parametrize("command", [["mpe", "P.json", "D.npz"],
                                     ["mmt-scan", "map.txt", "--params", "p.json"]])
def test_both_imports_refuse_an_out_no_file_can_be_made_at_before_reading(tmp_path, capsys,
                                                                          command):
    """`import mpe` refuses --out as `import mmt-scan` (and the window's Import scan…) do,
    naming the option and what was expected, before the scan's files are read (they do not
    exist here), not with HDF5's words for the hidden file it could not make."""
    out = str(tmp_path / "no such folder" / "s.h5")
    assert main(["import", *command, "--out", out, "--name", "qdm"]) == 2
    err = capsys.readouterr().err
    assert f"--out is '{out}'; there is no directory " in err, err
    assert "expected a file in a folder that exists" in err, err
