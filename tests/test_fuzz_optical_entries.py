"""Fuzzing the registered images stored in session files (entries of kind "optical"), which
the other fuzz tests store only whole: every dataset of the entry missing, of another type
or shape, a null dataspace, a link to nothing, or holding values no registration holds (NaN,
infinite, a negative RMS, a singular matrix, a float or 16-bit image; and values a
registration may hold, which are read as stored). The map views draw
such an image under every map of the file; `read_optical_entry` must return the image and
registration as written or refuse with one InputError naming the file, the entry and what
was expected, never another exception and never a made-up picture or placement.
"""

from __future__ import annotations

import shutil
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest

from smm_daq.analysis.optical import ImageRegistration
from smm_daq.errors import InputError
from smm_daq.storage.optical_entry import read_optical_entry, write_optical_entry

IMAGE = np.random.default_rng(20261206).integers(0, 256, (6, 8, 3), dtype=np.uint8)
REGISTRATION = ImageRegistration(matrix=np.array([[1e-6, 0.0, 2e-6], [0.0, 1e-6, 0.0]]),
                                 pixels=np.array([[0.0, 0.0], [7.0, 0.0], [0.0, 5.0]]),
                                 points=np.array([[2e-6, 0.0], [9e-6, 0.0], [2e-6, 5e-6]]),
                                 rms=1e-9)
DATASETS = ("data/image", "registration/matrix", "registration/control_pixels",
            "registration/control_points", "registration/rms")


def _values(shape: tuple[int, ...]) -> Iterator[tuple[str, Callable[[h5py.File, str], None]]]:
    def data(value: object) -> Callable[[h5py.File, str], None]:
        return lambda f, name: f.create_dataset(name, data=value)  # type: ignore[arg-type]

    yield "missing", lambda f, name: None
    yield "a group", lambda f, name: f.create_group(name)
    yield "a null dataspace", data(h5py.Empty("f8"))
    yield "text", data("abc")
    yield "fixed bytes", data(np.full(shape, b"abc", "S3"))
    yield "compound", data(np.zeros(shape, dtype=[("a", "f8"), ("b", "f8")]))
    yield "opaque", data(np.zeros(shape, dtype="V8"))
    yield "a link to nothing", lambda f, name: f.__setitem__(name, h5py.SoftLink("/none"))
    yield "one value", data(1.0)
    yield "1-D", data(np.ones(5))
    for label, fill in (("NaN", np.nan), ("infinite", np.inf), ("1e6", 1e6), ("-3", -3.0),
                        ("zeros", 0.0)):
        yield label, data(np.full(shape, fill))


def _cases() -> Iterator[tuple[str, str, Callable[[h5py.File, str], None]]]:
    shapes = {"data/image": IMAGE.shape, "registration/matrix": (2, 3),
              "registration/control_pixels": (3, 2), "registration/control_points": (3, 2),
              "registration/rms": ()}
    for dataset in DATASETS:
        for label, make in _values(shapes[dataset]):
            yield dataset, label, make
    yield "data/image", "16-bit", lambda f, name: f.create_dataset(
        name, data=IMAGE.astype(np.uint16) * 300)
    yield "data/image", "floats in [0, 1]", lambda f, name: f.create_dataset(
        name, data=IMAGE / 255.0)
    yield "data/image", "RGBA", lambda f, name: f.create_dataset(
        name, data=np.zeros((6, 8, 4), np.uint8))
    yield "data/image", "no pixel", lambda f, name: f.create_dataset(
        name, data=np.zeros((0, 0, 3), np.uint8))
    yield "registration/matrix", "singular", lambda f, name: f.create_dataset(
        name, data=np.array([[1e-6, 1e-6, 0.0], [1e-6, 1e-6, 0.0]]))


# Values a registration may hold (control points anywhere, any RMS >= 0): read as stored.
HARMLESS = {(f"registration/{key}", label) for key in ("control_pixels", "control_points")
            for label in ("1e6", "-3", "zeros")} | {
    ("registration/rms", label) for label in ("one value", "1e6", "zeros")}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("optical") / "base.h5"
    write_optical_entry(path, "photo", IMAGE, REGISTRATION, image_file="photo.png")
    return path


def test_the_whole_entry_reads_back(base: Path) -> None:
    image, registration = read_optical_entry(base, "photo")
    assert np.array_equal(image, IMAGE)
    assert np.array_equal(registration.matrix, REGISTRATION.matrix)
    assert registration.rms == REGISTRATION.rms


def test_every_damaged_optical_entry_is_refused_naming_file_entry_and_dataset(
        base: Path, tmp_path: Path) -> None:
    failures, count = [], 0
    for dataset, label, make in _cases():
        count += 1
        path = tmp_path / "spoiled.h5"
        shutil.copy(base, path)
        with h5py.File(path, "a") as f:
            del f[f"photo/{dataset}"]
            make(f, f"photo/{dataset}")
        case = f"{dataset} {label}"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # a cast of NaN to a colour: a made-up picture
                read_optical_entry(path, "photo")
        except InputError as exc:
            msg = str(exc)
            named = [w for w in (str(path), "'photo'", dataset.split("/")[-1], "expected")
                     if w not in msg]
            if named or "\n" in msg:
                failures.append(f"{case}: the message does not name {named}: {msg}")
        except Exception as exc:  # what the fuzzing looks for
            failures.append(f"{case}: {type(exc).__name__}: {exc}")
        else:
            if (dataset, label) not in HARMLESS:
                failures.append(f"{case}: read as if whole")
    print(f"{count} damaged optical entries")
    assert not failures, f"{len(failures)} of {count}:\n" + "\n".join(failures)


@pytest.mark.parametrize(("limit", "shape"), [(None, (10**6, 10**6, 3)), (24, (7, 8, 3))],
                         ids=["10^12 pixels", "one row beyond"])
def test_an_image_stated_larger_than_any_read_is_refused_before_it_is_read(
        base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limit: int | None,
        shape: tuple[int, int, int]) -> None:
    """A damaged entry stating more pixels than an image smm-daq reads (Pillow's limit,
    twice `MAX_IMAGE_PIXELS`) is refused by its shape, not read into memory (a MemoryError);
    one of as many as the limit is read."""
    from PIL import Image

    if limit is not None:
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", limit)  # 48 pixels: IMAGE's
        assert np.array_equal(read_optical_entry(base, "photo")[0], IMAGE)
    path = tmp_path / "stated.h5"
    shutil.copy(base, path)
    with h5py.File(path, "a") as f:
        del f["photo/data/image"]
        f.create_dataset("photo/data/image", shape=shape, dtype=np.uint8, chunks=(1, 8, 3))
    with pytest.raises(InputError, match=rf"'data/image' states {shape[0]} × {shape[1]} "
                                         "pixels; expected an image of at most"):
        read_optical_entry(path, "photo")
