"""Optical images as users give them, spoiled: every reading ends in an RGB array or one
InputError naming the file, never another exception (the Optical tab shows the message)."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from smm_daq.analysis.optical import ImageWarning, load_image
from smm_daq.errors import InputError

SEED = 20261205
FORMATS = ("PNG", "JPEG", "TIFF", "BMP")


def _valid(fmt: str, rng: np.random.Generator) -> bytes:
    mode = "RGB" if fmt == "JPEG" else str(rng.choice(["RGB", "L", "RGBA", "I;16", "1"]))
    if fmt in ("JPEG", "BMP") and mode not in ("RGB", "L"):
        mode = "RGB"
    size = (int(rng.integers(1, 40)), int(rng.integers(1, 40)))
    img = Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.convert(mode).save(buf, fmt)
    return buf.getvalue()


def _bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (PIL refuses beyond its limit)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _spoiled(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    cases: list[tuple[str, bytes]] = [("empty", b""), ("text", b"not an image\n"),
                                      ("bomb", _bomb_png(60_000, 60_000)),
                                      ("zero size", _bomb_png(0, 0))]
    for fmt in FORMATS:
        data = _valid(fmt, rng)
        cases.append((f"{fmt} whole", data))
        for k in range(12):
            cut = int(rng.integers(1, len(data)))
            cases.append((f"{fmt} cut at {cut}", data[:cut]))
            flipped = bytearray(data)
            for i in rng.integers(0, len(data), int(rng.integers(1, 6))):
                flipped[i] = int(rng.integers(0, 256))
            cases.append((f"{fmt} bytes changed {k}", bytes(flipped)))
    return cases


def test_spoiled_images_read_or_refused_by_name(tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    other = []
    for label, data in _spoiled(rng):
        path = tmp_path / "photo.img"
        path.write_bytes(data)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                rgb = load_image(path)
        except InputError as exc:
            assert str(path) in str(exc) and "expected" in str(exc), (label, str(exc))
            assert not caught, (label, [str(w.message) for w in caught])  # the refusal alone
            continue
        except Exception as exc:  # any other exception is the failure
            other.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3, label
        assert min(rgb.shape[:2]) >= 2, label
        # Pillow's warnings of a damaged image: one of ours naming the file, none of its own
        assert all(w.category is ImageWarning and str(path) in str(w.message)
                   for w in caught), (label, [str(w.message) for w in caught])
        assert len(caught) <= 1, label
    assert not other, "\n".join(other)


@pytest.mark.parametrize("name", ["a directory", "missing"])
def test_paths_that_are_no_file_refused(tmp_path: Path, name: str) -> None:
    path = tmp_path / "x.png"
    if name == "a directory":
        path.mkdir()
    with pytest.raises(InputError, match="expected"):
        load_image(path)
