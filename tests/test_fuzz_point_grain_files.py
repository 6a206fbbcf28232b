"""Fuzzing the files of the point-source MMT workflow through the command line: point lists
(`--grain-format points`), the multipole library's particle NPZ (`mpe`) and its scan (`import
mpe`: JSON and NPZ), Dragonfly exports (`dragonfly`) and masks (`--mask`: .npy, images,
.json shapes). Each malformed file must be refused with one message naming it, exit 2, no
traceback, every file given unchanged and no output written.

The cases are generated (every column or key with every kind of bad value, seeded cuts and
byte flips); the counts per kind are printed (pytest -s).
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fuzz_harness import Case, run_all
from PIL import Image

from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry

SEED = 20261205
N = 12
STEP = 10e-6
BAD_TEXT = ["nan", "inf", "-inf", "1e308", "-1e308", "abc", "", "1e20", "1.5", "0", "-1",
            "1e-320"]
NON_UTF8 = b"\xff\xfe\x80 not text \xc3\x28\n"


def _check(cases: Iterator[Case]) -> None:
    counts, failures = run_all(cases)
    print(counts)
    assert not failures, f"{len(failures)} of {sum(counts.values())}:\n" + "\n".join(failures)


def _cuts(data: bytes, n: int, rng: np.random.Generator) -> Iterator[tuple[str, bytes]]:
    for at in sorted(set(rng.integers(1, len(data) - 1, size=n).tolist())):
        yield f"cut at byte {at} of {len(data)}", data[:at]


@pytest.fixture
def session(tmp_path: Path) -> Path:
    path = tmp_path / "s.h5"
    x = np.arange(N) * STEP
    bz = 1e-6 * np.exp(-((x[None, :] - 55e-6) ** 2 + (x[:, None] - 55e-6) ** 2) / 4e-10)
    write_map_entry(path, MapData(bz, x, x, height=20e-6, sensor_size=(0.0, 0.0),
                                  applied_field=np.zeros(3), name="ok"), kind="scan")
    return path


def _invert(session: Path, out: Path, grains: Path, fmt: str, *extra: str) -> list[str]:
    return ["mmt", "invert", str(session), "--entry", "ok", "--grains", str(grains),
            "--grain-format", fmt, "--model", "dipole", "--out", str(out), *extra]


# -- point lists ------------------------------------------------------------------------------

POINT_ROW = ["5.5e-05", "5.5e-05", "-1e-05", "1e-16", "1"]  # x y z volume label


def _point_cases() -> Iterator[tuple[str, bytes]]:
    for col, name in enumerate(("x", "y", "z", "volume", "label")):
        for bad in BAD_TEXT:
            if (name in ("x", "y") and bad in ("0", "-1", "1.5", "1e-320")) or (
                    name == "z" and bad in ("-1", "1e-320", "0", "-1e308")) or (
                    name in ("volume", "label") and bad in ("1.5", "1e20")
                    and name == "volume") or (name == "label" and bad in ("0", "-1")):
                continue  # a valid value (a grain may lie anywhere in x, y; labels any whole)
            row = POINT_ROW.copy()
            row[col] = bad
            yield f"{name} = {bad!r}", (" ".join(row) + "\n").encode()
    line = " ".join(POINT_ROW) + "\n"
    yield "four fields", " ".join(POINT_ROW[:4]).encode() + b"\n"
    yield "six fields", (line.strip() + " 7\n").encode()
    yield "empty", b""
    yield "comments only", b"# x y z volume label\n\n"
    yield "not UTF-8", NON_UTF8
    yield "label twice", (line + line.replace("5.5e-05", "6e-05")).encode()
    yield "above the sensor", line.replace("-1e-05", "3e-05").encode()
    yield "label 1e300", line.replace(" 1\n", " 1e300\n").encode()
    yield "label 2**63", line.replace(" 1\n", f" {2**63}\n").encode()
    rng = np.random.default_rng(SEED)
    text = ("# x y z volume label\n" + line + line.replace(" 1\n", " 2\n")).encode()
    yield from _cuts(text, 6, rng)


def _point_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "r.csv"
    for i, (label, content) in enumerate(_point_cases()):
        path = tmp / f"points{i}.txt"
        path.write_bytes(content)
        yield Case("point list", label, _invert(session, out, path, "points"), [path, session],
                   [out], [path.name])


def test_every_malformed_point_list_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_point_fuzz(tmp_path, session))


# -- the multipole library's NPZ (particles; Bz_array) and JSON ---------------------------------

PARTICLES = {"particle_positions": np.array([[55e-6, 55e-6, -10e-6]]),
             "volumes": np.array([1e-16]), "identifier": np.array([1])}


def _npz(**arrays: object) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def _array_variants(key: str, good: np.ndarray) -> Iterator[tuple[str, object]]:
    yield "missing", None
    yield "NaN", np.full(good.shape, np.nan)
    yield "infinite", np.full(good.shape, np.inf)
    yield "1e308", np.full(good.shape, 1e308)
    yield "strings", np.full(good.shape, "x")
    yield "complex", good.astype(complex) + 1j
    yield "0-d", np.float64(1.0)
    yield "empty", np.zeros((0, *good.shape[1:]))
    yield "wrong shape", np.zeros((*good.shape, 2))
    yield "Python objects", np.array([{"a": 1}], dtype=object)


def _mpe_particle_cases() -> Iterator[tuple[str, bytes]]:
    for key, good in PARTICLES.items():
        for label, value in _array_variants(key, good):
            if key == "identifier" and label == "missing":
                continue  # optional
            arrays = {k: v for k, v in PARTICLES.items() if k != key}
            if value is not None:
                arrays[key] = value  # type: ignore[assignment]
            if label == "Python objects":
                buf = io.BytesIO()
                np.savez(buf, **arrays)  # pickled object array
                yield f"{key} {label}", buf.getvalue()
                continue
            yield f"{key} {label}", _npz(**arrays)
    yield "identifier 1.5", _npz(**{**PARTICLES, "identifier": np.array([1.5])})
    yield "identifier 1e300", _npz(**{**PARTICLES, "identifier": np.array([1e300])})
    yield "identifier float16 1.5", _npz(**{**PARTICLES, "identifier": np.array([1.5], np.float16)})
    yield "identifier -2**63", _npz(**{**PARTICLES, "identifier": np.array([-(2**63)])})
    yield "volume 0", _npz(**{**PARTICLES, "volumes": np.array([0.0])})
    yield "volume -1e-16", _npz(**{**PARTICLES, "volumes": np.array([-1e-16])})
    yield "not an NPZ", b"particle_positions 1 2 3\n"
    yield "empty", b""
    yield "an NPY, not an NPZ", _npy(np.zeros(3))
    yield from _damaged_zips(PARTICLES)
    data = _npz(**PARTICLES)
    rng = np.random.default_rng(SEED + 1)
    for label, cut in _cuts(data, 5, rng):
        yield label, cut
    for at in rng.integers(40, len(data) - 40, size=4):
        yield f"byte {at} flipped", data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1:]


def _zip_fields(data: bytes, offsets: tuple[int, int], value: int, *, bits: bool) -> bytes:
    """`data` (a zip archive) with a 16-bit field of every local header and central directory
    entry (at `offsets` past their signatures) set to `value`, or its bits or-ed in (`bits`)."""
    out = bytearray(data)
    for signature, offset in zip((b"PK\x03\x04", b"PK\x01\x02"), offsets, strict=True):
        at = out.find(signature)
        while at >= 0:
            old = struct.unpack_from("<H", out, at + offset)[0]
            struct.pack_into("<H", out, at + offset, old | value if bits else value)
            at = out.find(signature, at + 4)
    return bytes(out)


def _open_bracket(data: bytes) -> bytes:
    """`data` with its first .npy header's shape left unclosed, `(12, 12(`: no Python literal,
    numpy's filter for an earlier version's header ends in tokenize's TokenError."""
    at = data.index(b"'shape': (")
    close = data.index(b")", at)
    return data[:close] + b"(" + data[close + 1:]


ZIP_VERSION_173 = "an archive of zip version 17.3"  # zipfile opens none (NotImplementedError)


def _damaged_zips(arrays: dict[str, np.ndarray]) -> Iterator[tuple[str, bytes]]:
    """An NPZ of `arrays` whose members zipfile opens but cannot read: flagged patched data,
    encrypted or strongly encrypted, compressed by a method it lacks, or deflated data that
    does not inflate (NotImplementedError, RuntimeError and zlib.error: each a traceback)."""
    data = _npz(**arrays)
    for label, bit in (("patched", 1 << 5), ("encrypted", 1), ("strongly encrypted", 1 << 6)):
        yield f"members flagged {label}", _zip_fields(data, (6, 8), bit, bits=True)
    yield "members of compression method 99", _zip_fields(data, (8, 10), 99, bits=False)
    members = {f"{k}.npy": _npy(v) for k, v in arrays.items()}
    first = next(iter(members))
    members[first] = _open_bracket(members[first])  # its CRC right: the header is read
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for name, member in members.items():
            archive.writestr(name, member)
    yield "a member's header's bracket left open", buf.getvalue()
    yield ZIP_VERSION_173, _zip_fields(data, (4, 6), 173, bits=False)  # the reader's version
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)  # type: ignore[arg-type]
    packed = bytearray(buf.getvalue())
    name_length, extra_length = struct.unpack_from("<HH", packed, 26)
    start = 30 + name_length + extra_length  # the first member's deflated bytes
    packed[start + 2:start + 12] = bytes(b ^ 0xA5 for b in packed[start + 2:start + 12])
    yield "deflated bytes damaged", bytes(packed)


def _npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def test_an_npz_no_reader_opens_is_refused_in_every_grain_format(tmp_path: Path,
                                                                  session: Path) -> None:
    """Every format is told an archive zipfile cannot open (a zip version it lacks), as the
    cuboid and point readers look for the format the file is in (a traceback before)."""
    grains = tmp_path / "grains.npz"
    grains.write_bytes(dict(_damaged_zips(PARTICLES))[ZIP_VERSION_173])
    out = tmp_path / "r.csv"
    _check(Case("damaged NPZ", fmt, _invert(session, out, grains, fmt), [grains, session], [out],
                [grains.name]) for fmt in ("mpe", "cuboids", "mmt", "points", "dragonfly"))


def _mpe_particle_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "r.csv"
    for i, (label, content) in enumerate(_mpe_particle_cases()):
        path = tmp / f"particles{i}.npz"
        path.write_bytes(content)
        yield Case("mpe particles", label, _invert(session, out, path, "mpe"),
                   [path, session], [out], [path.name])


def test_every_malformed_particle_file_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_mpe_particle_fuzz(tmp_path, session))


GEOMETRY = {"Scan height Hz": 2e-5, "Scan area x-dimension Sx": 1.2e-4,
            "Scan area y-dimension Sy": 1.2e-4, "Scan x-step Sdx": 1e-5,
            "Scan y-step Sdy": 1e-5, "Sensor origin x": 0.0, "Sensor origin y": 0.0,
            "Sensor dimensions": []}
SCAN = {"Bz_array": np.zeros((N, N))}


def _mpe_scan_cases() -> Iterator[tuple[str, str, bytes, str]]:
    """(what is wrong, 'json' or 'npz', content, a word the message names)."""
    for key in GEOMETRY:
        values: list[object] = [float("nan"), float("inf"), 1e308, -1e-5, 0.0, "x", None,
                                [1, 2], True, 1e-310]
        if key == "Sensor dimensions":
            values = [[-1e-6, 1e-6], [1e-6], [float("nan"), 1e-6], "x", [1e308, 1e308], 3]
        for bad in values:
            if key.startswith("Sensor origin") and bad in (-1e-5, 0.0, 1e-310):
                continue  # an origin may be anywhere
            yield f"{key} = {bad!r}", "json", json.dumps({**GEOMETRY, key: bad}).encode(), key
    huge = {**GEOMETRY, "Scan area x-dimension Sx": 1e300, "Scan x-step Sdx": 1e-300}
    yield "Sx / Sdx overflows", "json", json.dumps(huge).encode(), "Sx"
    many = {**GEOMETRY, "Scan area x-dimension Sx": 1.0, "Scan x-step Sdx": 1e-12}
    yield "1e12 sensors a line", "json", json.dumps(many).encode(), "Sdx"
    yield "missing key", "json", json.dumps({k: v for k, v in GEOMETRY.items()
                                             if k != "Scan height Hz"}).encode(), "Scan height"
    yield "not JSON", "json", b'{"Scan height Hz": 2e-5,', ""
    yield "a list", "json", b"[1, 2]", ""
    yield "not UTF-8", "json", NON_UTF8, ""
    for label, value in _array_variants("Bz_array", SCAN["Bz_array"]):
        if label == "NaN":
            continue  # masked pixels (as in import mmt-scan); the analyses refuse a map of none
        arrays = {} if value is None else {"Bz_array": value}
        if label == "Python objects":
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            yield f"Bz_array {label}", "npz", buf.getvalue(), "Bz_array"
            continue
        yield f"Bz_array {label}", "npz", _npz(**arrays), "Bz_array"
    yield "Bz_array transposed", "npz", _npz(Bz_array=np.zeros((N, N + 1)).T), "Bz_array"
    yield "not an NPZ", "npz", b"Bz 1 2 3\n", ""
    for label, damaged in _damaged_zips(SCAN):
        yield label, "npz", damaged, "Bz_array"
    data = _npz(**SCAN)
    rng = np.random.default_rng(SEED + 2)
    for label, cut in _cuts(data, 4, rng):
        yield label, "npz", cut, ""


def _mpe_scan_fuzz(tmp: Path) -> Iterator[Case]:
    out = tmp / "imported.h5"
    for i, (label, which, content, word) in enumerate(_mpe_scan_cases()):
        params, arrays = tmp / f"meta{i}.json", tmp / f"sample{i}.npz"
        params.write_bytes(content if which == "json" else json.dumps(GEOMETRY).encode())
        arrays.write_bytes(content if which == "npz" else _npz(**SCAN))
        bad = params if which == "json" else arrays
        argv = ["import", "mpe", str(params), str(arrays), "--out", str(out), "--name", "q"]
        yield Case("import mpe", label, argv, [params, arrays], [out],
                   [w for w in (bad.name, word) if w])


def test_every_malformed_library_scan_is_refused(tmp_path: Path) -> None:
    _check(_mpe_scan_fuzz(tmp_path))


# -- Dragonfly exports --------------------------------------------------------------------------

DF_HEADER = ("Label Index;Voxel count;Volume (mm³);Center Of Mass X (mm);"
             "Center Of Mass Y (mm);Center Of Mass Z (mm)\n")
DF_ROW = ["1", "100", "1e-7", "0.055", "0.055", "-0.01"]


def _dragonfly_cases() -> Iterator[tuple[str, bytes]]:
    for col in range(6):
        for bad in BAD_TEXT:
            if (col >= 3 and bad in ("0", "-1", "1.5", "1e-320", "1e20", "-1e308")) or (
                    col == 0 and bad in ("0", "1e20")) or (col == 1 and bad == "1e20") or (
                    col == 2 and bad in ("1.5", "1e20", "1e-320")):
                continue  # valid: any position; label 0; a large count or volume
            row = DF_ROW.copy()
            row[col] = bad
            yield f"column {col} = {bad!r}", (DF_HEADER + ";".join(row) + "\n").encode()
    row = ";".join(DF_ROW) + "\n"
    yield "label 1e300", (DF_HEADER + row.replace("1;100", "1e300;100", 1)).encode()
    yield "missing column", DF_HEADER.replace("Voxel count;", "").encode() + b"1;1e-7;1;1;1\n"
    yield "header only", DF_HEADER.encode()
    yield "empty", b""
    yield "short row", (DF_HEADER + "1;100\n").encode()
    yield "label twice", (DF_HEADER + row + row).encode()
    yield "mixed decimal marks", (DF_HEADER + row + "2;100;1e-7;0,055;0.055;-0.01\n").encode()
    yield "comma-separated", DF_HEADER.replace(";", ",").encode() + b"1,100,1e-7,1,1,1\n"
    rng = np.random.default_rng(SEED + 3)
    yield from _cuts((DF_HEADER + row).encode(), 6, rng)


def _dragonfly_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "r.csv"
    for i, (label, content) in enumerate(_dragonfly_cases()):
        path = tmp / f"dragonfly{i}.csv"
        path.write_bytes(content)
        argv = _invert(session, out, path, "dragonfly", "--z-top-um", "0")
        yield Case("dragonfly export", label, argv, [path, session], [out], [path.name])


def test_every_malformed_dragonfly_export_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_dragonfly_fuzz(tmp_path, session))


# -- masks --------------------------------------------------------------------------------------


def _png(width: int, height: int, *, claim: tuple[int, int] | None = None) -> bytes:
    """A black PNG; `claim`: the size its header states instead (the data unchanged)."""
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    data = buf.getvalue()
    if claim is None:
        return data
    ihdr = b"IHDR" + struct.pack(">II", *claim) + data[24:29]
    return data[:12] + ihdr + struct.pack(">I", zlib.crc32(ihdr)) + data[33:]


def _mask_cases() -> Iterator[tuple[str, str, bytes]]:
    """(what is wrong, suffix, content)."""
    good = np.zeros((N, N), bool)
    for label, arr in (("wrong shape", np.zeros((N, N + 1), bool)),
                       ("transposed", np.zeros((N + 1, N), bool).T),
                       ("3-D", np.zeros((2, N, N), bool)), ("0-d", np.bool_(True)),
                       ("floats", good.astype(float) + 0.5), ("NaN", np.full((N, N), np.nan)),
                       ("integers 2", good.astype(int) + 2), ("strings", np.full((N, N), "x")),
                       ("complex", good.astype(complex)), ("empty", np.zeros((0, 0), bool))):
        yield f".npy {label}", ".npy", _npy(arr)  # type: ignore[arg-type]
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    yield ".npy of Python objects", ".npy", buf.getvalue()
    yield ".npy not one", ".npy", b"0 1 0\n"
    yield ".npy cut", ".npy", _npy(good)[:100]
    yield ".npy header's bracket left open", ".npy", _open_bracket(_npy(good))
    png = _png(N, N)
    yield "png empty", ".png", b""
    yield "png text", ".png", b"not an image\n"
    yield "png cut", ".png", png[: len(png) // 2]
    yield "png header only", ".png", png[:33]
    yield "png of 1e5 x 1e5 pixels (a decompression bomb)", ".png", _png(
        N, N, claim=(100_000, 100_000))
    yield "png of 20000 x 10000 pixels", ".png", _png(N, N, claim=(20_000, 10_000))
    yield "jpg of png bytes, cut", ".jpg", png[:40]
    shapes = {"rectangles_um": [[0, 50, 0, 50]], "polygons_um": [[[0, 0], [50, 0], [0, 50]]]}
    for key, bad in (("rectangles_um", [[0, 50, 0]]), ("rectangles_um", [[0, "a", 0, 1]]),
                     ("rectangles_um", [[0, 1e308, 0, 1e308]]), ("rectangles_um", [["nan"]]),
                     ("rectangles_um", 5), ("rectangles_um", [[True, 1, 0, 1]]),
                     ("polygons_um", [[[0, 0], [1, 1]]]), ("polygons_um", [[[0, 0, 0]] * 3]),
                     ("polygons_um", [[[0, 0], [1e308, 0], [0, 1e308]]]),
                     ("polygons_um", "x"), ("circles_um", [[0, 0, 5]])):
        yield f".json {key} = {bad!r}", ".json", json.dumps({**shapes, key: bad}).encode()
    yield ".json NaN", ".json", b'{"rectangles_um": [[NaN, 1, 0, 1]]}'
    yield ".json Infinity", ".json", b'{"rectangles_um": [[0, Infinity, 0, 1]]}'
    yield ".json not JSON", ".json", b'{"rectangles_um": [[0, 1'
    yield ".json a list", ".json", b"[[0, 1, 0, 1]]"
    yield ".json not UTF-8", ".json", NON_UTF8
    yield "unknown suffix", ".txt", b"0 1\n"


def _mask_fuzz(tmp: Path, session: Path) -> Iterator[Case]:
    out = tmp / "r.csv"
    grains = tmp / "grains.txt"
    grains.write_text(" ".join(POINT_ROW) + "\n")
    for i, (label, suffix, content) in enumerate(_mask_cases()):
        path = tmp / f"mask{i}{suffix}"
        path.write_bytes(content)
        argv = _invert(session, out, grains, "points", "--mask", str(path))
        yield Case("mask", label, argv, [path, session, grains], [out], [path.name])


def test_every_malformed_mask_is_refused(tmp_path: Path, session: Path) -> None:
    _check(_mask_fuzz(tmp_path, session))
