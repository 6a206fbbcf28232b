"""A property of the scan plan stored as JSON in every scan entry (read back by `resume`, a
recipe continued, the scan form's saved settings): any JSON value under any key gives a plan
of the kinds it was written with, or one InputError naming the source, never another
exception. Python takes JSON's true for 1 and `float` takes "1" and "nan", so a plan that was
not checked kind by kind read `"height_um": true` as 1 µm and `"field_uT": "100"` as the field
(1, 0, 0) µT, and a fly scan's `"trigger": "no"` as true (tests/test_fuzz_resume.py holds
such cases through the command line).
"""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.errors import InputError

PLAN = {"dwell_tau": 0.0, "field_uT": [0.0, 40.0, 0.0], "height_um": 100.0, "name": "s1",
        "nx": 4, "ny": 3, "raster": "serpentine", "settle_tau": 8.0, "step_x_um": 20.0,
        "step_y_um": 20.0, "title": "", "x0_um": 12470.0, "y0_um": 12480.0}
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**400), 10**400)
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=5)
    | st.sampled_from(["1", "nan", "inf", "100", " 5 "]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner,
                                                                max_size=2),
    max_leaves=6)


FLY = {"pixel_time_s": 0.05, "oversample": 8, "trigger": False, "baselines": True}
KEYS = sorted(PLAN) + [f"fly.{key}" for key in FLY] + ["fly"]


@settings(max_examples=250, derandomize=True, deadline=None, database=None)
@given(key=st.sampled_from(KEYS), value=JSON)
def test_any_json_under_any_plan_key_reads_as_written_or_is_refused(key: str,
                                                                    value: object) -> None:
    if key.startswith("fly"):  # a fly scan's plan: its settings under "fly"
        fly = {**FLY, key[4:]: value} if key != "fly" else value
        text = json.dumps({**PLAN, "fly": fly})
    else:
        text = json.dumps({**PLAN, key: value})
    try:
        plan = ScanPlan.from_text(text, source="s.h5, entry 's1', 'plan'")
    except InputError as exc:
        assert str(exc).startswith("s.h5, entry 's1', 'plan': ") and "expected" in str(exc)
        return
    back = plan.to_dict()
    assert all(isinstance(back[k], str) for k in ("name", "title", "raster"))
    if key in ("fly.trigger", "fly.baselines"):
        assert isinstance(value, bool), (key, value)  # never "no" read as true
    elif key == "fly.oversample":
        assert type(value) is int, (key, value)  # never 2.7 samples read as 2
    elif key == "fly.pixel_time_s":
        assert not _has_bool(value), (key, value)
    if key.startswith("fly"):
        return
    assert not _has_bool(value), (key, value)
    if isinstance(value, str):
        assert back[key] == value, (key, value, back[key])  # never text read as a number
    numbers = [v for k, v in back.items() if k not in ("name", "title", "raster", "field_uT")]
    assert all(math.isfinite(v) for v in [*numbers, *back["field_uT"]])


def _has_bool(value: object) -> bool:
    if isinstance(value, list):
        return any(_has_bool(v) for v in value)
    return isinstance(value, bool)


def test_a_fly_setting_of_another_kind_is_refused_naming_the_plan() -> None:
    for key, value in (("trigger", "no"), ("baselines", 1), ("oversample", 2.7),
                       ("pixel_time_s", True)):
        text = json.dumps({**PLAN, "fly": {**FLY, key: value}})
        try:
            ScanPlan.from_text(text, source="s.h5, entry 's1', 'plan'")
        except InputError as exc:
            assert str(exc).startswith("s.h5, entry 's1', 'plan': fly ") and key in str(exc)
        else:
            raise AssertionError(f"fly {key} = {value!r} was read")
