"""`smm-daq subtract` says each warning it caught on a line of its own, as the MMT commands
do: smm-daq's own as 'smm-daq: warning: MESSAGE', another library's labelled with where it
came from, so that a remark of NumPy's does not read as smm-daq's finding about the scans."""

from __future__ import annotations

import warnings

import numpy as np

from smm_daq.analysis import induced_entry
from smm_daq.analysis.registration import RegistrationWarning
from smm_daq.cli.main import main
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.nexus import write_map_entry


def test_subtract_labels_another_librarys_warning_with_its_origin(
    tmp_path, capsys, monkeypatch
) -> None:
    x, y = np.arange(8) * 2e-6, np.arange(6) * 2e-6
    path = tmp_path / "s.h5"
    for name, field in (("remanent", np.zeros(3)), ("in_field", np.array([0, 40e-6, 0]))):
        bz = np.random.default_rng(len(name)).normal(size=(6, 8)) * 1e-8
        write_map_entry(
            path,
            MapData(bz, x, y, applied_field=field, name=name, height=10e-6, sensor_size=(0.0, 0.0)),
            kind="scan",
        )
    subtract = induced_entry.subtract_entries

    def warned(*args, **kwargs):
        warnings.warn("the shift may be an artefact", RegistrationWarning, stacklevel=1)
        warnings.warn_explicit("a remark of NumPy's", UserWarning, np.__file__, 1)
        return subtract(*args, **kwargs)

    monkeypatch.setattr(induced_entry, "subtract_entries", warned)
    assert (
        main(
            [
                "subtract",
                str(path),
                "--in-field",
                "in_field",
                "--remanent",
                "remanent",
                "--name",
                "induced",
                "--no-register",
            ]
        )
        == 0
    )
    assert capsys.readouterr().err.splitlines() == [
        "smm-daq: warning: the shift may be an artefact",
        "smm-daq: warning (numpy): a remark of NumPy's",
    ]
