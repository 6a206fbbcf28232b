"""Comma-separated values that start with a negative number are values, not options."""

from __future__ import annotations

import pytest

from smm_daq.cli.main import build_parser


def _scan(*extra: str):
    return build_parser().parse_args(["scan", "--name", "r", "--out", "o.h5", "--size-um",
                                      "20,20", "--step-um", "1", *extra])


def test_negative_centre_and_field_lists_are_taken_as_values() -> None:
    args = _scan("--center-um", "-100,50", "--field-uT", "-40,0,1e-3")
    assert (args.center_um, args.field_uT) == ("-100,50", "-40,0,1e-3")
    assert _scan("--center-um", "-.5,-2e1").center_um == "-.5,-2e1"


def test_an_unknown_option_is_still_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        _scan("--center-um", "0,0", "-x,1")
    assert stop.value.code == 2
    assert "unrecognized arguments: -x,1" in capsys.readouterr().err
