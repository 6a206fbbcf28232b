"""The multipole library's NPZ and JSON as numpy and json write them: float32 and integer
arrays, a Bz_array whose shape disagrees with the JSON's grid, extra keys, NaN; and files of
pickled Python objects, refused without being unpickled (a malicious file runs no code)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.mmt.formats import mpe
from smm_daq.analysis.mmt.masks import read_mask
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.mapdata import MapData

DATA = Path(__file__).parent / "data"
JSON = DATA / "MetaDict_mpe_demo.json"
NPZ = DATA / "MagneticSample_mpe_demo.npz"


def arrays(**changed: object) -> dict[str, object]:
    with np.load(NPZ) as z:
        out: dict[str, object] = {k: z[k] for k in z.files}
    out.update(changed)
    return {k: v for k, v in out.items() if v is not None}


class Opens:
    """Unpickled, it opens `path` for writing: the file's existence says it ran."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return open, (str(self.path), "w")


def test_float32_and_integer_arrays_read_as_float64(tmp_path):
    """numpy saves what it is given: float32 fields and positions, integer labels (and a map
    of integer zeros) are read as the numbers they hold."""
    with np.load(NPZ) as z:
        bz, pos, vol = z["Bz_array"], z["particle_positions"], z["volumes"]
    path = tmp_path / "s.npz"
    np.savez(path, **arrays(Bz_array=bz.astype(np.float32), volumes=vol.astype(np.float32),
                            particle_positions=pos.astype(np.float32),
                            identifier=np.array([7, 3, 5], np.int32)))
    data, _ = mpe.read_scan(JSON, path)
    assert data.bz.dtype == np.float64
    np.testing.assert_array_equal(data.bz, bz.astype(np.float32).astype(float))
    grains = mpe.read_particles(path)
    np.testing.assert_array_equal(grains.positions, pos.astype(np.float32).astype(float))
    np.testing.assert_array_equal(grains.volume, vol.astype(np.float32).astype(float))
    assert grains.labels.tolist() == [7, 3, 5]
    np.savez(path, **arrays(Bz_array=np.zeros(bz.shape, np.int64)))
    assert not mpe.read_scan(JSON, path)[0].bz.any()


def test_a_field_out_of_range_is_named_as_a_plain_number(tmp_path):
    """An integer map in nT (whole numbers, read as T) is refused, its value printed as the
    number it is, not as numpy's repr."""
    with np.load(NPZ) as z:
        bz = z["Bz_array"]
    path = tmp_path / "s.npz"
    np.savez(path, **arrays(Bz_array=np.full(bz.shape, 687, np.int32)))
    with pytest.raises(InputError) as caught:
        mpe.read_scan(JSON, path)
    assert str(caught.value) == (f"{path}: array 'Bz_array' holds 687.0 at row 0, column 0; "
                                 "expected Bz in T, below 100 T in size (NaN: a masked pixel)")


def test_a_bz_array_of_another_shape_than_the_json_grid_is_refused_naming_both(tmp_path):
    with np.load(NPZ) as z:
        transposed = z["Bz_array"].T
    path = tmp_path / "s.npz"
    np.savez(path, **arrays(Bz_array=transposed))
    with pytest.raises(InputError, match=rf"s\.npz: array 'Bz_array' has shape \(20, 16\); "
                       rf"expected the grid {JSON} describes, 16 × 20 \(ny, nx\)"):
        mpe.read_scan(JSON, path)


def test_extra_json_keys_are_ignored_and_nan_in_a_key_used_is_refused(tmp_path):
    meta = json.loads(JSON.read_text()) | {"Comment": "re-run", "Sensor dimensions": [],
                                           "Extra": {"nested": [1, 2]}, "Unused": float("nan")}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(meta))  # json writes NaN as the bare word NaN
    data, _ = mpe.read_scan(path, NPZ)
    assert data.shape == (16, 20)
    path.write_text(json.dumps(meta | {"Scan height Hz": float("nan")}))
    with pytest.raises(InputError, match=r"m\.json: key 'Scan height Hz' is nan; expected a "
                       "number in m"):
        mpe.read_scan(path, NPZ)


def test_nan_in_bz_is_a_masked_pixel_but_nan_in_a_position_is_refused(tmp_path):
    with np.load(NPZ) as z:
        bz, pos = z["Bz_array"].copy(), z["particle_positions"].copy()
    bz[3, 4], pos[1, 2] = np.nan, np.nan
    path = tmp_path / "s.npz"
    np.savez(path, **arrays(Bz_array=bz, particle_positions=pos))
    data, _ = mpe.read_scan(JSON, path)
    assert np.isnan(data.bz[3, 4]) and np.isfinite(np.delete(data.bz.ravel(), 3 * 20 + 4)).all()
    with pytest.raises(InputError, match=r"s\.npz: particle 1 \(row 1 of "
                       r"'particle_positions'/'volumes'\) has position \(.*, nan\)"):
        mpe.read_particles(path)


@pytest.mark.parametrize("member", ["Bz_array", "particle_positions", "notes"])
def test_pickled_objects_are_refused_without_being_unpickled(tmp_path, member):
    """numpy.load with allow_pickle=True would run the pickle's code on reading the member:
    here it would create the marker file."""
    marker = tmp_path / "ran"
    path = tmp_path / "evil.npz"
    np.savez(path, **arrays(**{member: np.array([Opens(marker)], dtype=object)}))
    with np.load(path, allow_pickle=True) as z:  # the referee: the file does run code
        z[member]
    assert marker.exists()
    marker.unlink()
    for read in (lambda: mpe.read_scan(JSON, path), lambda: mpe.read_particles(path)):
        with pytest.raises(InputError, match=rf"evil\.npz: array '{member}' cannot be read "
                           r"\(it holds Python objects\); expected numeric arrays"):
            read()
    assert not marker.exists()


def test_a_pickled_npy_mask_is_refused_without_being_unpickled(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.npy"
    np.save(path, np.array([Opens(marker)], dtype=object), allow_pickle=True)
    x = np.arange(4) * 1e-6
    with pytest.raises(InputError, match=r"evil\.npy: is not a numpy array file \(it holds "
                       r"Python objects\)"):
        read_mask(path, MapData(bz=np.zeros((4, 4)), x=x, y=x, name="s"))
    assert not marker.exists()


def test_bad_library_files_are_refused_by_the_command_line_which_writes_nothing(tmp_path,
                                                                                capsys):
    marker, evil, wrong = tmp_path / "ran", tmp_path / "evil.npz", tmp_path / "wrong.npz"
    np.savez(evil, **arrays(volumes=np.array([Opens(marker)], dtype=object)))
    with np.load(NPZ) as z:
        np.savez(wrong, **arrays(Bz_array=z["Bz_array"][:, :-1]))
    h5 = tmp_path / "s.h5"
    assert main(["import", "mpe", str(JSON), str(wrong), "--out", str(h5), "--name", "w"]) == 2
    assert (f"{wrong}: array 'Bz_array' has shape (16, 19); expected the grid"
            in capsys.readouterr().err)
    assert not h5.exists()
    assert main(["import", "mpe", str(JSON), str(NPZ), "--out", str(h5), "--name", "qdm"]) == 0
    with h5py.File(h5) as f:
        entries = sorted(f)
    out = tmp_path / "r.csv"
    assert main(["mmt", "invert", str(h5), "--entry", "qdm", "--grain-format", "mpe",
                 "--grains", str(evil), "--out", str(out)]) == 2
    assert (f"{evil}: array 'volumes' cannot be read (it holds Python objects)"
            in capsys.readouterr().err)
    assert not out.exists() and not marker.exists()
    with h5py.File(h5) as f:
        assert sorted(f) == entries


def test_json_and_text_saved_with_a_byte_order_mark_are_read(tmp_path):
    """Windows Notepad saved UTF-8 with a byte-order mark; json.loads refuses it unless the
    text is decoded as utf-8-sig."""
    from smm_daq.analysis.mmt.formats.community import read_mmt_scan

    meta = tmp_path / "m.json"
    meta.write_text(JSON.read_text(), encoding="utf-8-sig")
    assert mpe.read_scan(meta, NPZ)[0].shape == (16, 20)
    qdm = DATA / "mmt-tutorial-qdm"
    params, bz = tmp_path / "p.json", tmp_path / "bz.txt"
    params.write_text((qdm / "tutorial_scan_params.json").read_text(), encoding="utf-8-sig")
    bz.write_text((qdm / "class_QDM_result2.txt").read_text(), encoding="utf-8-sig")
    want = read_mmt_scan(qdm / "class_QDM_result2.txt", qdm / "tutorial_scan_params.json")
    np.testing.assert_array_equal(read_mmt_scan(bz, params).bz, want.bz)
