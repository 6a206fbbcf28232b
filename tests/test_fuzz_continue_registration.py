"""Fuzzing `run --continue` across the rule that counts the x-y correlation of a shift's errors
in its significance: a recipe's first subtraction as today's release wrote it (with
`registration/shift_correlation`) and as the release before the shift left out by default
wrote it, then `registration/shift_correlation`, `registered`, `shift` and `shift_errors`
dropped or damaged (NaN, ±inf, out of [-1, 1], text, an array, a group). Each is continued
(the next subtraction decided by the SDs alone where the correlation is missing and it
leaves an insignificant shift out) or refused before any step runs with one `InputError`
naming the file, the entry and the field, never another exception, the session file unchanged.
"""

from __future__ import annotations

import hashlib
import shutil
import warnings
from pathlib import Path

import h5py
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_recipe_shift_as_begun import _continued, _cut_after_first

from smm_daq.errors import InputError

DROP, GROUP = "drop", "group"
VALUES = [DROP, GROUP, float("nan"), float("inf"), -float("inf"), 2.0, -1.5, 1.0, -1.0, 0.0,
          0.5, 3, "text", b"", [0.1, 0.2], [[0.5]], 1, 0]
KEYS = ("shift_correlation", "registered", "shift", "shift_errors")


@pytest.fixture(scope="module")
def begun(tmp_path_factory: pytest.TempPathFactory) -> dict[bool, Path]:
    """The first subtraction written, by today's release and by the earlier one."""
    folder = tmp_path_factory.mktemp("begun")
    made = {}
    for earlier in (False, True):
        made[earlier] = folder / f"{earlier}.h5"
        _cut_after_first(made[earlier], earlier_release=earlier)
    return made


def _put(g: h5py.Group, key: str, value: object) -> None:
    del g[key]
    if value == GROUP:
        g.create_group(key)
    elif value != DROP:
        g[key] = value


def _takes(key: str, value: object) -> bool:
    """Whether the value may stand in a registration today's reader takes: a correlation in
    [-1, 1], registered 0 or 1 (what the continuation reads of them)."""
    number = isinstance(value, (int, float)) and value == value
    if key == "shift_correlation":
        return value == DROP or (number and -1 <= value <= 1)  # type: ignore[operator]
    if key == "registered":
        return value == DROP or value in (0, 1)
    return True  # the shift and its SDs: read only of an earlier release's entry, below


@settings(max_examples=10, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(earlier=st.booleans(), key=st.sampled_from(KEYS), value=st.sampled_from(VALUES))
# each a traceback, or a damaged record silently taken for today's rule
@example(earlier=False, key="registered", value=[0.1, 0.2])
@example(earlier=False, key="shift_correlation", value=float("nan"))
@example(earlier=True, key="shift_errors", value=[[0.5]])
def test_a_continued_recipes_registration_record_is_taken_or_refused_naming_it(
        begun: dict[bool, Path], tmp_path: Path, earlier: bool, key: str, value: object
        ) -> None:
    path = tmp_path / "s.h5"
    shutil.copy(begun[earlier], path)
    with h5py.File(path, "a") as f:
        _put(f["d1/registration"], key, value)
        correlated = "shift_correlation" in f["d1/registration"]
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            calls, _said = _continued(path)
    except InputError as exc:
        message = str(exc)
        assert str(path) in message and "'d1'" in message, message
        assert f"registration/{key}" in message and "expected" in message, message
    else:
        assert _takes(key, value), (key, value, "taken")
        if earlier and key in ("shift", "shift_errors"):
            assert value in (DROP, GROUP) or (isinstance(value, list) and len(value) == 2), \
                (key, value, "taken")
        assert len(calls) == 1, calls
        if correlated:  # today's rule
            assert calls[0]["by_sds_alone"] is False, calls
        elif not calls[0]["shift_as_begun"]:  # (a step applying it decides nothing)
            assert calls[0]["by_sds_alone"] is True, calls
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
