"""An NPZ whose zip lists a member larger than its bytes can restore: a stored member holds its
bytes in the archive, a deflated one at most 1032 times them (np.savez_compressed's). The
array-header check took the size the zip lists as what the member holds, so a header stating
8 TB in a member listed 2^60 bytes long went through to NumPy's allocation (a MemoryError and
a traceback, where it must be refused with one message, exit 2 and nothing written). So did
a member named without '.npy', which np.load reads as an array all the same.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all

from smm_daq.cli.main import main
from smm_daq.storage.nexus import read_map

UM = 1e-6


def _mpe(tmp_path: Path, sides_um: tuple[float, float]) -> list[Path]:
    """Parameters stating a scan of `sides_um` at 1 µm, and the path of its NPZ (not written)."""
    params = tmp_path / "meta.json"
    params.write_text(json.dumps({
        "Scan height Hz": 4 * UM, "Scan area x-dimension Sx": sides_um[0] * UM,
        "Scan area y-dimension Sy": sides_um[1] * UM, "Scan x-step Sdx": UM,
        "Scan y-step Sdy": UM, "Sensor origin x": 0.0, "Sensor origin y": 0.0,
        "Sensor dimensions": []}))
    return [params, tmp_path / "scan.npz"]


def _zip64_stating(member: bytes, stated: int) -> bytes:
    """An NPZ of `member` (deflated) as Bz_array.npy, whose central directory lists it
    `stated` bytes long (a zip64 size: any up to 2^64)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("Bz_array.npy", member)
    raw = bytearray(buf.getvalue())
    entry = raw.find(b"PK\x01\x02")
    name_length, extra_length = struct.unpack_from("<HH", raw, entry + 28)
    struct.pack_into("<I", raw, entry + 24, 0xFFFFFFFF)  # the size is in the zip64 field
    struct.pack_into("<H", raw, entry + 30, extra_length + 12)
    at = entry + 46 + name_length
    raw[at:at] = struct.pack("<HHQ", 1, 8, stated)
    end = raw.find(b"PK\x05\x06")
    (directory,) = struct.unpack_from("<I", raw, end + 12)
    struct.pack_into("<I", raw, end + 12, directory + 12)
    return bytes(raw)


def test_an_npz_member_listed_larger_than_it_can_be_is_refused(tmp_path: Path) -> None:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    params, arrays = _mpe(tmp_path, (12, 12))
    arrays.write_bytes(_zip64_stating(header.getvalue(), 2**60))
    with zipfile.ZipFile(arrays) as z:
        assert z.getinfo("Bz_array.npy").file_size == 2**60
    out = tmp_path / "s.h5"
    _, failures = run_all([Case("import", "member listed 2^60 bytes", [
        "import", "mpe", str(params), str(arrays), "--out", str(out), "--name", "q"],
        [params, arrays], [out], ["scan.npz", "states an array of shape (1000000, 1000000)"])])
    assert not failures, "\n".join(failures)


def test_a_compressed_npz_at_deflates_best_ratio_is_read(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    """Zeros compress the most (near 1032:1): still within what their member can hold."""
    params, arrays = _mpe(tmp_path, (1000, 2000))
    np.savez_compressed(arrays, Bz_array=np.zeros((2000, 1000)))
    with zipfile.ZipFile(arrays) as z:
        info = z.getinfo("Bz_array.npy")
    assert info.file_size > 1000 * info.compress_size
    out = tmp_path / "s.h5"
    assert main(["import", "mpe", str(params), str(arrays), "--out", str(out),
                 "--name", "q"]) == 0, capsys.readouterr().err
    assert read_map(out, "q").shape == (2000, 1000)


def test_an_npz_member_named_without_npy_is_checked_too(tmp_path: Path) -> None:
    """np.load reads a member named 'Bz_array' as the array 'Bz_array' when it starts as a
    .npy does: the check had looked only at members named '*.npy'."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10**6, 10**6)})
    params, arrays = _mpe(tmp_path, (12, 12))
    with zipfile.ZipFile(arrays, "w") as z:
        z.writestr("Bz_array", header.getvalue())
    out = tmp_path / "s.h5"
    _, failures = run_all([Case("import", "member 'Bz_array' with no .npy", [
        "import", "mpe", str(params), str(arrays), "--out", str(out), "--name", "q"],
        [params, arrays], [out], ["scan.npz", "array 'Bz_array' states an array of shape "
                                              "(1000000, 1000000)"])])
    assert not failures, "\n".join(failures)
