"""The demo (README's first command), where nothing is wrong, says the registration's shift it
left out as a note, not a warning: a new user read "smm-daq: warning:" as a fault. The shift
found and not applied is still said, and recorded in the entry as a note."""

from __future__ import annotations

import warnings

import h5py

from smm_daq.analysis.registration import RegistrationNote, RegistrationWarning
from smm_daq.cli.main import _warning_text
from smm_daq.cli.warning_text import warning_line


def test_the_demo_records_the_shift_left_out_as_a_note_and_warns_of_nothing(cli_demo):
    assert cli_demo.code == 0, cli_demo.err
    with h5py.File(cli_demo.path, "r") as f:
        registration = f["induced/registration"]
        assert "warnings" not in registration
        note = registration["notes"][()].decode()
    assert note.startswith("the registration's shift (")
    assert "not significantly different from zero, so it is not applied" in note


def test_a_note_is_printed_as_a_note_and_a_warning_as_a_warning():
    """Both ways a command prints what it was warned of: at Python's warning (the demo's) and
    for one it caught (`smm-daq subtract`)."""
    for category, said in ((RegistrationNote, "note"), (RegistrationWarning, "warning")):
        w = warnings.WarningMessage(category("'a − b': the shift"), category, __file__, 1)
        assert _warning_text(w) == f"smm-daq: {said}: 'a − b': the shift\n"
        assert warning_line(w) == f"smm-daq: {said}: 'a − b': the shift"
