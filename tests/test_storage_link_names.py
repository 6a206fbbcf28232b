"""A name a top-level link holds, asked for as a new entry or read as one: every writer says
it is a link (to an entry, to nothing, round in a loop, into another file) and that smm-daq
never writes over one, never that an entry of that name exists (which sent users to resume
or to --overwrite, both refused); the file is left as it was."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from test_recipe_steps import GOOD
from test_storage_earlier_staging import _session
from test_storage_links_and_marks import READERS

from smm_daq.acquisition.recipe import check_recipe, parse_recipe
from smm_daq.acquisition.resumable import load_resumable
from smm_daq.analysis.optical import ImageRegistration
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile
from smm_daq.storage.nexus import read_map
from smm_daq.storage.optical_entry import write_optical_entry
from smm_daq.storage.scan_entry import check_new_scan

LINKS = {  # the link, and how a message says what it is
    "to an entry": (h5py.SoftLink("/rem"), "a soft link to '/rem'"),
    "to nothing": (h5py.SoftLink("/gone"), "a soft link to '/gone', which does not exist"),
    "round in a loop": (h5py.SoftLink("/alias"),
                        "a soft link to '/alias', which leads round in a loop of links"),
    "into another file": (h5py.ExternalLink("other.h5", "/scan"),
                          "an external link to '/scan' in other.h5"),
}
REGISTRATION = ImageRegistration(matrix=np.array([[1e-6, 0, 0], [0, 1e-6, 0]]),
                                 pixels=np.zeros((3, 2)), points=np.zeros((3, 2)), rms=0.0)
NEVER = "not an entry, and smm-daq never writes over a link; expected another entry name"


def _linked(tmp_path: Path, link: str) -> Path:
    path = _session(tmp_path)
    with h5py.File(path, "a") as f:
        f["alias"] = LINKS[link][0]
    return path


@pytest.mark.parametrize("overwrite", [False, True])
@pytest.mark.parametrize("link", LINKS)
def test_a_product_asked_for_under_a_links_name_is_refused_naming_the_link(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str, overwrite: bool) -> None:
    path = _linked(tmp_path, link)
    before = path.read_bytes()
    capsys.readouterr()
    assert main(["subtract", str(path), "--in-field", "inf", "--remanent", "rem", "--name",
                 "alias", "--no-register", *(["--overwrite"] if overwrite else [])]) == 2
    err = capsys.readouterr().err
    assert f"'alias' is {LINKS[link][1]}" in err and NEVER in err
    assert "already exists" not in err and "Traceback" not in err
    assert path.read_bytes() == before


@pytest.mark.parametrize("link", LINKS)
def test_a_scan_asked_for_under_a_links_name_is_refused_naming_the_link_not_resume(
        tmp_path: Path, link: str) -> None:
    path = _linked(tmp_path, link)
    with pytest.raises(InputError) as caught:
        check_new_scan(path, "alias")
    said = str(caught.value)
    assert f"'alias' is {LINKS[link][1]}" in said and NEVER in said
    assert "resume" not in said and "already exists" not in said


@pytest.mark.parametrize("link", LINKS)
def test_an_image_asked_for_under_a_links_name_is_refused_naming_the_link(
        tmp_path: Path, link: str) -> None:
    path = _linked(tmp_path, link)
    with pytest.raises(InputError) as caught:
        write_optical_entry(path, "alias", np.zeros((4, 4, 3), np.uint8), REGISTRATION)
    said = str(caught.value)
    assert f"'alias' is {LINKS[link][1]}" in said and NEVER in said


@pytest.mark.parametrize("link", ["to nothing", "round in a loop"])
def test_a_reader_asked_for_a_link_leading_nowhere_says_it_is_that_link(
        tmp_path: Path, link: str) -> None:
    path = _linked(tmp_path, link)
    with pytest.raises(InputError, match=r"no entry 'alias' \('alias' is "
                                         + LINKS[link][1].replace("(", r"\(")):
        read_map(path, "alias")


@pytest.mark.parametrize("reader", READERS)
@pytest.mark.parametrize("link", ["to nothing", "round in a loop"])
def test_every_reader_asked_for_a_link_leading_nowhere_names_it_never_a_traceback(
        tmp_path: Path, link: str, reader: str) -> None:
    """HDF5 raises a KeyError (to nothing) or a RuntimeError (a loop) for one: resume, the
    field checks, the scan record and the image reader ended in a traceback."""
    path = _linked(tmp_path, link)
    with pytest.raises(InputError, match=r"no (such )?entry.*\('alias' is "
                                         + LINKS[link][1].replace("(", r"\(")):
        READERS[reader](path, "alias")


def test_resume_of_an_absent_entry_lists_the_scans_past_a_link_round_in_a_loop(
        tmp_path: Path) -> None:
    """HDF5 raises a RuntimeError for the loop as the listing of scans reads each name."""
    path = _linked(tmp_path, "round in a loop")
    with pytest.raises(InputError, match=r"entry 'absent': no such entry; expected a scan of "
                                         r"this file \(rem, inf\)"):
        load_resumable(path, "absent")


def test_a_recipe_making_an_entry_under_a_links_name_is_refused_before_it_runs(
        tmp_path: Path) -> None:
    """Checked with the recipe, not hours later, when its earlier scans are done and the
    step's writer refuses the name."""
    path = _linked(tmp_path, "to an entry")
    text = GOOD.replace('"rem"', '"r2"').replace('"inf"', '"i2"').replace(
        'name = "induced"', 'name = "alias"')
    with pytest.raises(InputError, match=r"step 7 \(subtract 'alias'\): in .*s\.h5, 'alias' is "
                                         r"a soft link to '/rem', not an entry, and smm-daq "
                                         r"never writes over a link"):
        check_recipe(parse_recipe(text), load_profile(), path, can_prompt=True)
