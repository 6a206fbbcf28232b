"""Fuzzing the coil calibration file (`rig.calibration_file`, written by `smm-daq
calibrate-coils` and read by every later command on the profile), which the other fuzz tests
leave out: every key with every kind of bad value, keys missing or unknown, seeded cuts and
byte flips. Each malformed file must be refused with an InputError naming the calibration
file, never another exception; a file read must hold a finite, invertible matrix and a finite
ambient field; a sample goes through `smm-daq check`, which must exit 2 with one message and
no traceback before anything connects. The counts are printed (pytest -s).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest

from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile

REPO = Path(__file__).resolve().parents[1]
SEED = 20261206
GOOD = """\
# Coil calibration written by `smm-daq calibrate-coils`
calibration_T_per_A = [[4.9987e-05, -9.7e-09, -9.56e-09], [-2.08e-09, 4.9988e-05, -6.99e-09], \
[-5.0e-09, -1.28e-09, 5.00000e-05]]
ambient_field_uT = [0.0054, -0.0037, 0.0068]
fitted_at = "2026-12-06T07:35:45+00:00"
residual_nT = 0.17
"""
MATRIX = "calibration_T_per_A"
BAD = {  # key -> values that are never a calibration's
    MATRIX: ["nan", "inf", "-inf", "1e308", '"x"', "true", "[]", "[1, 2, 3]", "{a = 1}",
             "[[1e-5, 0, 0], [0, 1e-5, 0]]", "[[0, 0, 0], [0, 0, 0], [0, 0, 0]]",
             "[[1e-5, 1e-5, 0], [1e-5, 1e-5, 0], [0, 0, 1e-5]]",
             "[[nan, 0, 0], [0, 1e-5, 0], [0, 0, 1e-5]]",
             "[[1e300, 0, 0], [0, 1e-5, 0], [0, 0, 1e-5]]",
             "[[1e-5, 0, 0], [0, 1e-5, 0], [0, 0, 1e-5], [0, 0, 0]]",
             '[["1e-5", 0, 0], [0, 1e-5, 0], [0, 0, 1e-5]]'],
    "ambient_field_uT": ["nan", "inf", "1e308", '"x"', "true", "[]", "[1, 2]", "0",
                         "[nan, 0, 0]", "[1, 2, inf]", "[1e9, 0, 0]", "[[1, 2, 3]]",
                         "{a = 1}"],
    "residual_nT": ["nan", "inf", "-1", "1e308", '"x"', "true", "[]", "[1]"],
    "fitted_at": ["1", "true", "[]", '""', "{a = 1}"],
}


def _with(key: str, value: str | None) -> str:
    """GOOD with `key` set to `value` (None: the key left out)."""
    lines = [line for line in GOOD.splitlines(keepends=True)
             if not line.startswith(f"{key} =")]
    return "".join(lines) + (f"{key} = {value}\n" if value is not None else "")


def _cases() -> dict[str, tuple[str | bytes, bool]]:
    """name -> (file content, whether it must be refused); cuts and flips may read, as
    long as what they give is a usable calibration."""
    cases: dict[str, tuple[str | bytes, bool]] = {}
    for key, values in BAD.items():
        for v in values:
            cases[f"{key} = {v}"] = (_with(key, v), True)
    for key in (MATRIX, "ambient_field_uT"):
        cases[f"no {key}"] = (_with(key, None), True)
    cases["unknown key"] = (GOOD + "ambient_field_nT = [1, 2, 3]\n", True)
    cases["a profile's table"] = ("[coils]\n" + GOOD, True)
    cases["empty"] = ("", True)
    cases["no line break at the end"] = (GOOD.rstrip("\n"), True)
    cases["binary"] = (bytes(range(256)), True)
    cases["latin-1"] = (GOOD.replace("# Coil", "# Spule größe").encode("latin-1"), True)
    rng = random.Random(SEED)
    raw = GOOD.encode()
    for _ in range(40):
        cut = rng.randrange(len(raw))
        cases[f"cut at {cut}"] = (raw[:cut], False)
    for _ in range(40):
        flipped = bytearray(raw)
        at = rng.randrange(len(flipped))
        flipped[at] = rng.randrange(256)
        cases[f"byte {at} -> {flipped[at]}"] = (bytes(flipped), False)
    return cases


CASES = _cases()


@pytest.fixture
def profile(tmp_path: Path) -> Path:
    path = tmp_path / "lab.toml"
    path.write_text((REPO / "configs" / "simulator.toml").read_text().replace(
        "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"'))
    return path


def _write(path: Path, content: str | bytes) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def test_the_good_file_is_read(profile: Path) -> None:
    _write(profile.parent / "coils.toml", GOOD)
    coils = load_profile(profile).coils
    assert coils.calibration[0, 0] == pytest.approx(4.9987e-05)
    np.testing.assert_allclose(coils.ambient_field, np.array([0.0054, -0.0037, 0.0068]) * 1e-6)


def test_every_malformed_calibration_file_is_refused_naming_it(profile: Path) -> None:
    cal = profile.parent / "coils.toml"
    refused = read = 0
    for name, (content, must_refuse) in CASES.items():
        _write(cal, content)
        before = cal.read_bytes()
        try:
            coils = load_profile(profile).coils
        except InputError as exc:
            assert str(cal) in str(exc), (name, str(exc))
            refused += 1
        else:
            assert not must_refuse, f"{name}: read, expected refused"
            assert np.all(np.isfinite(coils.calibration)), name
            assert np.linalg.cond(coils.calibration) < 1e12, name
            assert np.all(np.isfinite(coils.ambient_field)), name
            read += 1
        assert cal.read_bytes() == before, name
    print(f"\ncalibration files: {refused} refused, {read} read as usable")
    assert refused >= sum(must for _, must in CASES.values())


def test_check_refuses_a_malformed_calibration_file_before_connecting(
        profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cal = profile.parent / "coils.toml"
    rng = random.Random(SEED)
    sample = rng.sample([n for n, (_, must) in CASES.items() if must], 6)
    for name in sample:
        _write(cal, CASES[name][0])
        code = main(["check", "--profile", str(profile)])
        out, err = capsys.readouterr()
        assert code == 2, (name, out, err)
        assert "Traceback" not in err and str(cal) in err, (name, err)
        assert "identity" not in out, name  # no instrument was asked anything
    assert sorted(p.name for p in profile.parent.iterdir()) == ["coils.toml", "lab.toml"]
