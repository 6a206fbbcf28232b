"""Mask shapes that exclude nothing are warned of (a shape in the wrong unit or place would
otherwise leave the bad pixels in the fit without a word); one mask per scan from the list
of files given for all."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from smm_daq.analysis.mmt.masks import NO_MASK, MaskWarning, NothingMasked, mask_for, read_mask
from smm_daq.storage.mapdata import MapData

UM = 1e-6


def test_a_shape_covering_no_pixel_is_warned_of_and_others_are_not(tmp_path):
    x = np.arange(10) * UM
    data = MapData(bz=np.zeros((8, 10)), x=x, y=x[:8], name="scan")
    shapes = tmp_path / "s.json"
    with warnings.catch_warnings():
        warnings.simplefilter("error", MaskWarning)
        shapes.write_text(json.dumps({"rectangles_um": [[0, 1, 0, 1]],
                                      "polygons_um": [[[4, 4], [6, 4], [5, 6]]]}))
        assert read_mask(shapes, data).sum() > 4
    shapes.write_text(json.dumps({"rectangles_um": [[0, 1, 0, 1], [20, 30, 2, 3]],
                                  "polygons_um": [[[40, 40], [60, 40], [50, 60]]]}))
    with pytest.warns(MaskWarning) as caught:
        mask = read_mask(shapes, data)
    said = [str(w.message) for w in caught]
    assert len(said) == 2
    assert said[0].startswith(f"{shapes}: rectangles_um[1] covers no pixel centre of scan "
                              "'scan'")
    assert said[1].startswith(f"{shapes}: polygons_um[0] covers no pixel centre of scan 'scan'")
    assert mask.sum() == 4  # the first rectangle's pixels still excluded


def test_shapes_that_all_miss_the_scan_are_said_once_naming_them_and_its_extent(tmp_path):
    """Every shape off the scan (drawn in mm, or for another scan) is one warning that the
    mask excludes nothing, naming the shapes and where the scan lies; it was each shape's
    warning and then that one."""
    x = np.arange(10) * UM
    data = MapData(bz=np.zeros((8, 10)), x=x, y=x[:8], name="scan")
    shapes = tmp_path / "s.json"
    shapes.write_text(json.dumps({"rectangles_um": [[20, 30, 2, 3]],
                                  "polygons_um": [[[40, 40], [60, 40], [50, 60]]]}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert not read_mask(shapes, data).any()
    assert [(w.category, str(w.message)) for w in caught] == [
        (NothingMasked, f"{shapes}: excludes no pixel of scan 'scan': rectangles_um[0], "
         "polygons_um[0] cover no pixel centre of it (it spans x 0 .. 9 µm, y 0 .. 7 µm); "
         "expected shapes over its bad pixels, in µm. Every measured pixel is used")]


def test_each_scan_takes_its_mask_from_the_list_given_for_all(tmp_path):
    x = np.arange(4) * UM
    data = MapData(bz=np.zeros((4, 4)), x=x, y=x, name="scan")
    left, right = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    left[:, 0] = right[:, 3] = True
    np.save(tmp_path / "l.npy", left)
    np.save(tmp_path / "r.npy", right)
    l, r = str(tmp_path / "l.npy"), str(tmp_path / "r.npy")
    assert mask_for([], 1, data) is None
    assert all(np.array_equal(mask_for([l], i, data), left) for i in range(3))  # one for all
    assert np.array_equal(mask_for([l, r], 1, data), right)
    assert mask_for([NO_MASK, r], 0, data) is None
    assert np.array_equal(mask_for([NO_MASK, r], 1, data), right)
