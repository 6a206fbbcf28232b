"""`Session.subtract` hands `on_warning` the warning its subtraction raised, the object itself:
it made a new one of the same category from the text, which lost what the warning carried
besides its text, and failed outright for a category whose constructor takes more than it."""

from __future__ import annotations

import warnings

import numpy as np
from acq_fakes import fake_rig
from test_registration_coverage import scans

from smm_daq.acquisition.session import Session
from smm_daq.analysis import induced_entry
from smm_daq.analysis.registration import RegistrationWarning
from smm_daq.storage.nexus import write_map_entry


class _Carrying(RegistrationWarning):
    """A warning that carries more than its text, and is made only with it."""

    def __init__(self, text: str, shift: tuple[float, float]) -> None:
        super().__init__(text)
        self.shift = shift


def test_on_warning_is_handed_the_warning_raised(tmp_path, monkeypatch) -> None:
    in_field, remanent, _ = scans(np.random.default_rng(8), 8, (0.0, 0.0, 0.0), 0.0,
                                  shift=(7e-6, -10e-6))  # a shift applied without a word
    path = tmp_path / "s.h5"
    for m in (remanent, in_field):
        write_map_entry(path, m, kind="scan")
    raised = _Carrying("the shift found", (7e-6, -10e-6))
    subtraction = induced_entry.subtraction_of_entries

    def warning_too(*args, **kwargs):
        warnings.warn(raised, stacklevel=1)
        return subtraction(*args, **kwargs)

    monkeypatch.setattr(induced_entry, "subtraction_of_entries", warning_too)
    told: list[Warning] = []
    Session(path, fake_rig(lambda x, y: 0.0 * x)).subtract("in_field", "remanent", "induced",
                                                           on_warning=told.append)
    assert len(told) == 1 and told[0] is raised, told
