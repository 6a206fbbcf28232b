"""The MMT tab shows a warning caught during an inversion as `mmt invert` prints it: smm-daq's
own as it says it, another library's led by where it came from, so that a SciPy or NumPy
remark does not read as smm-daq's finding about the scan."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.linalg import LinAlgWarning
from test_gui_mmt import WAIT_MS, open_view, write_cuboid_session

from smm_daq.analysis.mmt.solver import inversion
from smm_daq.analysis.mmt.solver.inversion import SingularWarning


@pytest.fixture
def session(tmp_path):
    return write_cuboid_session(tmp_path)


def test_a_librarys_warning_is_shown_with_its_origin(qtbot, session, monkeypatch) -> None:
    solve = inversion.invert_map

    def warning_solver(*args, **kwargs):
        warnings.warn("Q is singular to working precision", SingularWarning, stacklevel=1)
        warnings.warn("An ill-conditioned matrix was met", LinAlgWarning, stacklevel=1)
        warnings.warn_explicit("a remark of NumPy's", UserWarning, np.__file__, 1)
        return solve(*args, **kwargs)

    monkeypatch.setattr(inversion, "invert_map", warning_solver)
    view = open_view(qtbot, *session)
    with qtbot.waitSignal(view.finished, timeout=WAIT_MS) as done:
        assert view.run()
    assert done.args[0], done.args[1]
    said = view.status.text().splitlines()
    assert said[1:] == [
        "Warning: Q is singular to working precision",
        "Warning: (scipy) An ill-conditioned matrix was met",
        "Warning: (numpy) a remark of NumPy's",
    ], said
