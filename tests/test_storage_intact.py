"""`smm_daq.storage.intact` reading object headers from a file's bytes: a header cut short
(the file ends inside it) or one whose sizes lead past the end is judged not intact, never a
crash, so `repair` rebuilds or names the file."""

import h5py
import numpy as np
import pytest

from smm_daq.storage.intact import _Layout


@pytest.fixture
def layout(tmp_path):
    with h5py.File(tmp_path / "s.h5", "w", libver=("v110", "latest")) as f:
        f.create_dataset("x", data=np.arange(3.0))
        made = _Layout(f)
        address = h5py.h5o.get_info(f["x"].id).addr
    whole = (tmp_path / "s.h5").read_bytes()
    return made, whole[address:]


def _judge(layout, tmp_path, data: bytes) -> bool:
    made, _ = layout
    cut = tmp_path / "cut.bin"
    cut.write_bytes(data)
    with open(cut, "rb") as fh:
        return made._chunks_current(fh, 0)


def test_a_whole_header_is_judged_current(layout, tmp_path):
    assert _judge(layout, tmp_path, layout[1]) is True


@pytest.mark.parametrize("keep", [0, 4, 5, 6, 7, 12, 30])
def test_a_header_cut_short_is_not_intact(layout, tmp_path, keep):
    assert _judge(layout, tmp_path, layout[1][:keep]) is False


def test_a_header_whose_size_leads_past_the_end_is_not_intact(layout, tmp_path):
    # version 2, 8-byte chunk size of 2**62: never read (it would not fit in memory)
    data = b"OHDR\x02\x03" + (2 ** 62).to_bytes(8, "little") + b"\0" * 16
    assert _judge(layout, tmp_path, data) is False
