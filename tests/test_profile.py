"""Profiles load in SI units, and every error names the file, the key and what is allowed."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from smm_daq.errors import InputError
from smm_daq.instruments.profile import load_profile, parse_profile


def test_simulator_profile_is_default_and_in_si(repo: Path) -> None:
    p = load_profile()
    assert p.path == (repo / "configs" / "simulator.toml").resolve()
    assert p.simulated
    assert p.sensor.height == pytest.approx(100e-6)
    assert p.sensor.active_area == pytest.approx((30e-6, 30e-6))
    assert p.coils.max_field == pytest.approx(100e-6)
    np.testing.assert_allclose(p.stage.travel[0], [0.0, 25e-3])
    assert p.stage.resolution == pytest.approx(10e-9)


def test_example_lab_profile_loads(repo: Path) -> None:
    p = load_profile(repo / "configs" / "example-lab.toml")
    assert not p.simulated
    assert p.lockin.link.implementation == "sr830"
    assert p.stage.axis_sign == (1, -1, 1)
    assert p.fluxgate is not None and p.fluxgate.channels == (101, 102, 103)
    np.testing.assert_allclose(p.coils.ambient_field, [14.2e-6, 0.8e-6, -48.5e-6])


def _edited(repo: Path, old: str, new: str) -> str:
    text = (repo / "configs" / "simulator.toml").read_text()
    assert old in text
    return text.replace(old, new)


@pytest.mark.parametrize(
    ("old", "new", "key", "expected"),
    [
        ("height_um = 100.0", "height_um = -5.0", "sensor.height_um", "> 0 µm"),
        ("height_um = 100.0", "height_um = 0", "sensor.height_um", "stand-off"),
        ("height_um = 100.0", "height_um = 2e4", "sensor.height_um", "in (0, 10000] µm"),
        ("max_field_uT = 100.0", 'max_field_uT = "lots"', "coils.max_field_uT",
         "expected a number in (0, 10000] µT"),  # a word is told the range, as a number out of it
        ("active_area_um = [30.0, 30.0]", 'active_area_um = ["30", 30.0]', "sensor.active_area_um",
         "finite numbers"),  # a quoted number is refused in an array as it is alone
        # one size 0 is a line, no sensor's shape, which scans stored and the MMT inverted as one
        ("active_area_um = [30.0, 30.0]", "active_area_um = [0.0, 30.0]", "sensor.active_area_um",
         "two sizes > 0 µm, the width and length of the active area, or 0, 0 for a point"),
        ("active_area_um = [30.0, 30.0]", "active_area_um = [30.0, 0.0]", "sensor.active_area_um",
         "two sizes > 0 µm, the width and length of the active area, or 0, 0 for a point"),
        ('channel = "X"', 'channel = "Q"', "sensor.channel", "'X', 'R'"),
        ("axis_sign = [1, 1, 1]", "axis_sign = [1, 2, 1]", "stage.axis_sign", "+1 or -1"),
        ("resolution_nm = 10.0", "resolution_nm = 10.0\nspeed = 3", "stage.speed", "unknown key"),
        (
            "[[0.0, 25000.0], [0.0, 25000.0]",
            "[[10.0, 5.0], [0.0, 25000.0]",
            "stage.travel_um",
            "min < max",
        ),
        (
            "scale_T_per_V = [[1.0e-5, 0.0, 0.0], [0.0, 1.0e-5, 0.0], [0.0, 0.0, 1.0e-5]]",
            "scale_T_per_V = [[1.0e-5, 0.0, 0.0], [1.0e-5, 0.0, 0.0], [0.0, 0.0, 1.0e-5]]",
            "fluxgate.scale_T_per_V",
            "invertible",
        ),
        ("channels = [101, 102, 103]", "channels = [101.5, 102, 103]", "fluxgate.channels",
         "slot and channel"),
        ("channels = [101, 102, 103]", "channels = [101, 101, 103]", "fluxgate.channels",
         "three different"),
        ("channels = [101, 102, 103]", "channels = [101, 141, 103]", "fluxgate.channels",
         "101-140"),
        ("reference_on_connect = true", "reference_on_connect = 1", "stage.reference_on_connect",
         "true or false"),
        ('axes = ["1", "2", "3"]', 'axes = ["1", "1", "3"]', "stage.axes",
         "three different controller axis names"),
        ('axes = ["1", "2", "3"]', 'axes = ["1", "2 3", "3"]', "stage.axes", "without spaces"),
        ('axes = ["1", "2", "3"]', 'axes = ["1", "2\\t", "3"]', "stage.axes", "without spaces"),
        ('axes = ["1", "2", "3"]', 'axes = ["1", "\u8f74", "3"]', "stage.axes", "ASCII"),
        ('reserve = "normal"', 'reserve = "normal"\ninterface = "usb"', "lockin.interface",
         "'rs232', 'gpib'"),
    ],
)
def test_bad_values_are_named(repo: Path, old: str, new: str, key: str, expected: str) -> None:
    path = Path("/lab/profiles/bad.toml")
    with pytest.raises(InputError) as err:
        parse_profile(_edited(repo, old, new), path)
    message = str(err.value)
    assert str(path) in message
    assert key in message
    assert expected in message


def test_a_multimeter_profile_with_channel_1_is_refused_naming_the_real_numbering(
    repo: Path,
) -> None:
    """A 34970A numbers its channels by slot: channel 1 of slot 1 is 101, never 1."""
    path = Path("/lab/profiles/dmm.toml")
    with pytest.raises(InputError) as err:
        parse_profile(_edited(repo, "channels = [101, 102, 103]", "channels = [1, 2, 3]"), path)
    message = str(err.value)
    assert "fluxgate.channels" in message and "[1, 2, 3]" in message
    assert "101-140 in slot 1, 201-240 in slot 2" in message


def _lab(repo: Path, address: str, interface: str) -> str:
    """The example lab profile (a real rig's) with its lock-in at `address` on `interface`."""
    text = (repo / "configs" / "example-lab.toml").read_text()
    old = 'address = "GPIB0::8::INSTR"'
    assert text.count(old) == 1
    return text.replace(old, f'address = "{address}"\ninterface = "{interface}"')


@pytest.mark.parametrize(("address", "interface", "port"), [
    ("GPIB0::8::INSTR", "rs232", "GPIB"),
    ("ASRL/dev/ttyS0::INSTR", "gpib", "RS-232"),
    ("serial:/dev/ttyUSB0", "gpib", "RS-232"),
])
def test_a_lockin_interface_the_address_cannot_reach_is_refused(
        repo: Path, address: str, interface: str, port: str) -> None:
    """Every reply would go to the port the link does not reach (OUTX) and each query time
    out, reported as the lock-in not answering. (A simulated rig's address only names its
    emulator, which models whichever port the profile names.)"""
    text = _lab(repo, address, interface)
    with pytest.raises(InputError) as err:
        parse_profile(text, Path("/lab/p.toml"))
    assert (f"key 'lockin.interface' is '{interface}'; expected '{port.replace('-', '').lower()}"
            f"' or no key: address '{address}' reaches the lock-in's {port} port") in str(err.value)


@pytest.mark.parametrize(("address", "interface"), [
    ("TCPIP0::127.0.0.1::4001::SOCKET", "rs232"), ("TCPIP0::127.0.0.1::1234::SOCKET", "gpib"),
    ("GPIB0::8::INSTR", "gpib"), ("serial:/dev/ttyUSB0", "rs232"),
])
def test_a_lockin_interface_the_address_can_reach_is_kept(
        repo: Path, address: str, interface: str) -> None:
    text = _lab(repo, address, interface)
    lockin = parse_profile(text, Path("/lab/p.toml")).lockin
    assert (lockin.link.address, lockin.interface) == (address, interface)

def test_a_lockin_interface_is_refused_for_an_sr860(repo: Path) -> None:
    """The SR860 has no OUTX: it answers each query on the port the query came in on, so the
    key, which its driver cannot act on, is refused rather than silently ignored."""
    text = _lab(repo, "TCPIP0::10.0.0.5::4001::SOCKET", "rs232").replace(
        'implementation = "sr830"', 'implementation = "sr860"')
    with pytest.raises(InputError) as err:
        parse_profile(text, Path("/lab/p.toml"))
    message = str(err.value)
    assert "/lab/p.toml" in message
    assert ("key 'lockin.interface' is 'rs232'; expected no key for an SR860: it answers each "
            "query on the port the query came in on (it has no OUTX)") in message
    without = _edited(repo, 'implementation = "sr830"', 'implementation = "sr860"')
    assert parse_profile(without, Path("/lab/p.toml")).lockin.interface is None


def test_missing_key_and_missing_file(repo: Path, tmp_path: Path) -> None:
    text = _edited(repo, "height_um = 100.0\n", "")
    with pytest.raises(InputError, match=r"sensor\.height_um' is missing"):
        parse_profile(text, tmp_path / "p.toml")
    with pytest.raises(InputError, match="not found"):
        load_profile(tmp_path / "nope.toml")
    typo = _edited(repo, "max_current_A =", "max_curent_A =")
    with pytest.raises(InputError, match=r"key 'coils\.max_current_A' is missing; the table has "
                                         r"'coils\.max_curent_A' instead: a misspelling\?"):
        parse_profile(typo, tmp_path / "p.toml")
    with pytest.raises(InputError, match="not valid TOML"):
        parse_profile("[rig\nname=", tmp_path / "p.toml")


def test_calibration_file_overrides_the_coil_matrix(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "coils.toml").write_text(
        "calibration_T_per_A = [[4e-5, 0, 0], [0, 4e-5, 0], [0, 0, 4e-5]]\n"
        "ambient_field_uT = [1.0, 2.0, 3.0]\n"
    )
    text = _edited(repo, "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"')
    p = parse_profile(text, tmp_path / "p.toml")
    np.testing.assert_allclose(np.diag(p.coils.calibration), 4e-5)
    np.testing.assert_allclose(p.coils.ambient_field, [1e-6, 2e-6, 3e-6])


def test_a_calibration_file_that_cannot_be_read_is_named(repo: Path, tmp_path: Path) -> None:
    (tmp_path / "coils.toml").mkdir()  # a folder where the calibration file should be
    text = _edited(repo, "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"')
    with pytest.raises(InputError, match="is a directory; expected a TOML coil calibration"):
        parse_profile(text, tmp_path / "p.toml")


def test_a_calibration_file_cut_short_or_not_utf8_is_refused_naming_where(
        repo: Path, tmp_path: Path) -> None:
    """The calibration file is read as profiles and recipes are: a file cut short mid-line
    (`residual_nT = 3` of `= 30.0`) still parses, so it must end with a line break; a byte
    that is not UTF-8 is named by line and column."""
    calibration = tmp_path / "coils.toml"
    text = _edited(repo, "simulated = true", 'simulated = true\ncalibration_file = "coils.toml"')
    whole = ("calibration_T_per_A = [[4e-5, 0, 0], [0, 4e-5, 0], [0, 0, 4e-5]]\n"
             "ambient_field_uT = [1.0, 2.0, 3.0]\nresidual_nT = 30.0\n")
    calibration.write_text(whole[:-4])
    with pytest.raises(InputError, match=r"line 3 \('residual_nT = 3'\) does not end with a "
                                         "line break"):
        parse_profile(text, tmp_path / "p.toml")
    calibration.write_bytes(whole.encode() + "# étalonnage\n".encode("latin-1"))
    with pytest.raises(InputError, match=r"coils\.toml, line 4, column 3: is not UTF-8 text"):
        parse_profile(text, tmp_path / "p.toml")


@pytest.mark.parametrize("kind", ["profile", "recipe"])
def test_a_hand_written_file_that_cannot_be_read_says_why_and_where(
        repo: Path, tmp_path: Path, kind: str) -> None:
    from smm_daq.acquisition.recipe import load_recipe

    load = load_profile if kind == "profile" else load_recipe
    source = (repo / "configs" / "simulator.toml" if kind == "profile"
              else repo / "configs" / "recipes" / "remanent-and-induced.toml")
    latin = tmp_path / "latin.toml"
    lines = source.read_bytes().splitlines(keepends=True)
    lines.insert(2, "# échantillon\n".encode("latin-1"))  # a line pasted from a Latin-1 file
    latin.write_bytes(b"".join(lines))
    with pytest.raises(InputError) as caught:
        load(latin)
    assert str(caught.value).startswith(f"{latin}, line 3, column 3: is not UTF-8 text "
                                        "(byte 0xe9); expected a TOML")
    with pytest.raises(InputError, match="is a directory; expected a TOML"):
        load(tmp_path)


@pytest.mark.parametrize("section", ["lockin", "coils", "fluxgate"])
def test_every_instrument_on_a_serial_port_may_name_its_baud_rate(repo: Path,
                                                                  section: str) -> None:
    """An SR830 or a Kepco BOP set to 19200 baud on its front panel must be reachable: only the
    stage's link read `baud_rate` (a lock-in, the supplies and the multimeter took the port's
    9600, and every reply came garbled); without the key, the port's own default stays."""
    implementation = {"lockin": "sr830", "coils": "kepco_bop", "fluxgate": "dmm_fluxgate"}
    line = f'implementation = "{implementation[section]}"'
    plain = parse_profile(_edited(repo, line, line), Path("/lab/p.toml"))
    assert getattr(plain, section).link.baud_rate is None
    assert plain.stage.link.baud_rate == 115200  # PI's default, as before
    named = parse_profile(_edited(repo, line, f"{line}\nbaud_rate = 19200"), Path("/lab/p.toml"))
    assert getattr(named, section).link.baud_rate == 19200
    with pytest.raises(InputError, match=rf"{section}\.baud_rate.*whole number in \[50, 4000000\]"):
        parse_profile(_edited(repo, line, f"{line}\nbaud_rate = 19200.5"), Path("/lab/p.toml"))


def test_a_reserve_set_for_an_sr860_is_warned_of_as_ignored(repo: Path) -> None:
    """The SR860 chooses its dynamic reserve itself: a reserve other than the default that
    every profile carries is said to be ignored, naming the key; the default, or an SR830,
    says nothing (and no profile is refused)."""
    import warnings

    from smm_daq.instruments.profile import ProfileWarning

    sr860 = _edited(repo, 'implementation = "sr830"', 'implementation = "sr860"')
    with pytest.warns(ProfileWarning) as said:
        lockin = parse_profile(sr860.replace('reserve = "normal"', 'reserve = "high"'),
                               Path("/lab/p.toml")).lockin
    assert lockin.link.implementation == "sr860"
    assert [str(w.message) for w in said] == [
        "/lab/p.toml: key 'lockin.reserve' is 'high', ignored for an SR860 (it chooses its "
        "dynamic reserve itself; only an SR830 sets it): expected 'normal' or no key"]
    sr830 = _edited(repo, 'reserve = "normal"', 'reserve = "high"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        parse_profile(sr860, Path("/lab/p.toml"))
        assert parse_profile(sr830, Path("/lab/p.toml")).lockin.reserve == "high"


@pytest.mark.parametrize(("model", "harmonic", "frequency", "said"), [
    ("sr830", 20000, 1.0, "key 'lockin.harmonic' is 20000; expected a whole number in "
                          "[1, 19999] (the harmonics an SR830 detects at)"),
    ("sr860", 100, 1.0, "key 'lockin.harmonic' is 100; expected a whole number in [1, 99] "
                        "(the harmonics an SR860 detects at)"),
    ("sr830", 101, 1017.0, "key 'lockin.harmonic' is 101; expected a value that keeps "
                           "harmonic × reference_frequency_Hz (101 × 1017 = 102717 Hz) within "
                           "the 102000 Hz an SR830 detects at"),
    ("sr830", 1, 2e5, "key 'lockin.reference_frequency_Hz' is 200000.0; expected a value "
                      "that keeps harmonic × reference_frequency_Hz (1 × 200000 = 200000 Hz)"),
    ("sr860", 99, 5100.0, "(99 × 5100 = 504900 Hz) within the 500000 Hz an SR860 detects at"),
], ids=["sr830 harmonic", "sr860 harmonic", "sr830 detection", "sr830 reference",
        "sr860 detection"])
def test_a_harmonic_the_lockin_model_cannot_detect_at_is_refused_at_load(
        repo: Path, model: str, harmonic: int, frequency: float, said: str) -> None:
    """The profile had bounded the harmonic below only: 20000 on an SR830, or 100 on an SR860,
    loaded, and its driver refused it at connect, once the rest of the rig had connected."""
    text = _edited(repo, "harmonic = 1\n", f"harmonic = {harmonic}\n").replace(
        "reference_frequency_Hz = 1017.0", f"reference_frequency_Hz = {frequency!r}").replace(
        'implementation = "sr830"', f'implementation = "{model}"')
    with pytest.raises(InputError) as err:
        parse_profile(text.replace('reserve = "normal"', "") if model == "sr860" else text,
                      Path("/lab/p.toml"))
    assert str(err.value).startswith("/lab/p.toml: ") and said in str(err.value)


@pytest.mark.parametrize(("model", "harmonic", "frequency"), [
    ("sr830", 19999, 5.1), ("sr830", 100, 1017.0), ("sr860", 99, 5050.0)],
    ids=["sr830 harmonic", "sr830 detection", "sr860 both"])
def test_a_harmonic_the_lockin_model_detects_at_loads(repo: Path, model: str, harmonic: int,
                                                      frequency: float) -> None:
    from drivers.sr830 import SR830
    from drivers.sr860 import SR860

    text = _edited(repo, "harmonic = 1\n", f"harmonic = {harmonic}\n").replace(
        "reference_frequency_Hz = 1017.0", f"reference_frequency_Hz = {frequency!r}").replace(
        'implementation = "sr830"', f'implementation = "{model}"')
    lockin = parse_profile(text.replace('reserve = "normal"', "") if model == "sr860" else text,
                           Path("/lab/p.toml")).lockin
    assert lockin.harmonic == harmonic
    driver = SR830 if model == "sr830" else SR860
    assert harmonic <= driver.MAX_HARMONIC  # what its driver accepts at connect
    assert harmonic * frequency <= driver.MAX_DETECTION_FREQUENCY


HISLIP = "TCPIP0::10.0.0.5::hislip0::INSTR"


def _lab_lockin(repo: Path, lines: str) -> str:
    """The example lab profile with its lock-in's address line replaced by `lines`."""
    text = (repo / "configs" / "example-lab.toml").read_text()
    old = 'address = "GPIB0::8::INSTR"\n'
    assert text.count(old) == 1
    return text.replace(old, lines).replace("timeout_s = 3.0\n", "", 1)


@pytest.mark.parametrize("address", [
    HISLIP, "TCPIP::lab-lockin::HISLIP1,4880::INSTR",
    "TCPIP0::10.0.0.5::hislip0",  # ::INSTR left out, as VISA allows
])
def test_a_hislip_timeout_its_device_clear_cannot_be_done_in_is_refused(
        repo: Path, address: str) -> None:
    """pyvisa-py's HiSLIP device clear pauses 0.1 s between its two exchanges: at the least
    timeout of other links every clear after a lost reply was cut (the connection dropped
    and opened again). Refused, naming the HiSLIP link's least timeout; at it, kept."""
    text = _lab_lockin(repo, f'address = "{address}"\ntimeout_s = 0.1\n')
    with pytest.raises(InputError) as err:
        parse_profile(text, Path("/lab/p.toml"))
    assert (f"key 'lockin.timeout_s' is 0.1; expected at least 0.2 s for the HiSLIP address "
            f"'{address}': its device clear") in str(err.value)
    kept = _lab_lockin(repo, f'address = "{address}"\ntimeout_s = 0.2\n')
    assert parse_profile(kept, Path("/lab/p.toml")).lockin.link.timeout_s == 0.2
    other = _lab_lockin(repo, 'address = "TCPIP0::10.0.0.5::inst0::INSTR"\ntimeout_s = 0.1\n')
    assert parse_profile(other, Path("/lab/p.toml")).lockin.link.timeout_s == 0.1


def test_a_hislip_supply_after_the_first_is_checked_for_its_links_timeout(repo: Path) -> None:
    """The coils' one link serves three addresses: a HiSLIP one among them is checked too."""
    text = (repo / "configs" / "example-lab.toml").read_text()
    old = '"GPIB0::2::INSTR"'
    assert text.count(old) == 1
    text = text.replace(old, f'"{HISLIP}"').replace(
        'safe_state = "zero"\n', 'safe_state = "zero"\ntimeout_s = 0.15\n')
    with pytest.raises(InputError, match=r"key 'coils\.timeout_s' is 0\.15; expected at least "
                                         r"0\.2 s for the HiSLIP address"):
        parse_profile(text, Path("/lab/p.toml"))


SERVER = "TCPIP0::10.0.0.5::4001::SOCKET"


@pytest.mark.parametrize("interface", [None, "gpib"])
def test_an_sr830_line_baud_rate_its_replies_do_not_reach_is_refused(
        repo: Path, interface: str | None) -> None:
    """A baud rate on a socket names the RS-232 line behind a serial-to-Ethernet server; an
    SR830 sends its replies there only where `interface` says so (OUTX): refused, saying to
    add it, rather than every query timing out at connect."""
    said = "" if interface is None else f'interface = "{interface}"\n'
    text = _lab_lockin(repo, f'address = "{SERVER}"\n{said}baud_rate = 19200\n')
    with pytest.raises(InputError) as err:
        parse_profile(text, Path("/lab/p.toml"))
    message = str(err.value)
    assert ("key 'lockin.baud_rate' is 19200; expected no key, or interface = 'rs232' with it: "
            f"on the LAN address '{SERVER}' 'baud_rate' is the rate of the RS-232 line behind a "
            "serial-to-Ethernet server") in message
    kept = _lab_lockin(repo, f'address = "{SERVER}"\ninterface = "rs232"\nbaud_rate = 19200\n')
    lockin = parse_profile(kept, Path("/lab/p.toml")).lockin
    assert (lockin.interface, lockin.link.baud_rate) == ("rs232", 19200)


@pytest.mark.parametrize(("model", "lines", "least"), [
    ("sr860", "baud_rate = 9600\ntimeout_s = 2.0\n", "2.15"),  # 1031 bytes: 1.07 s
    ("sr830", 'interface = "rs232"\nbaud_rate = 300\ntimeout_s = 0.9\n', "1"),  # 15 bytes
])
def test_a_lan_timeout_the_least_buffer_piece_cannot_come_within_is_refused(
        repo: Path, model: str, lines: str, least: str) -> None:
    """Behind a serial-to-Ethernet server a buffer's read ends a timeout after it began: where
    even its least piece (an SR860's kB of CAPTUREGET?, an SR830's TRCA? point) cannot come
    within half of it at the line's rate, every buffer read would time out. Refused, naming
    the least timeout; at it, kept."""
    text = _lab_lockin(repo, f'address = "{SERVER}"\n{lines}').replace(
        'implementation = "sr830"', f'implementation = "{model}"')
    with pytest.raises(InputError) as err:
        parse_profile(text, Path("/lab/p.toml"))
    assert (f"key 'lockin.timeout_s' is {lines.split('timeout_s = ')[1].strip()}; expected "
            f"at least {least} s: the buffer's least piece") in str(err.value)
    kept = text.replace(f"timeout_s = {lines.split('timeout_s = ')[1].strip()}",
                        f"timeout_s = {least}")
    assert parse_profile(kept, Path("/lab/p.toml")).lockin.link.timeout_s == float(least)


@pytest.mark.parametrize("address", [
    "TCPIP0::10.0.0.5::inst0::INSTR", "TCPIP::10.0.0.5::hislip0::INSTR"])
def test_an_sr860_on_its_own_ethernet_keeps_its_timeout_whatever_its_baud_rate(
        repo: Path, address: str) -> None:
    """A `baud_rate` left in an SR860's section from its RS-232 days names no line behind its
    own VXI-11 or HiSLIP device: its timeout is not held to a 9600-baud line's least piece
    (the profile loaded before such lines were sized, and its driver sizes its blocks for a
    LAN). Unfixed, refused: "at least 2.15 s ... on the 9600-baud line". The key is said to
    be ignored there (a warning naming the address), the profile still loaded."""
    from smm_daq.instruments.profile import ProfileWarning

    text = _lab_lockin(repo, f'address = "{address}"\nbaud_rate = 9600\ntimeout_s = 1.0\n'
                       ).replace('implementation = "sr830"', 'implementation = "sr860"')
    with pytest.warns(ProfileWarning, match=rf"key 'lockin\.baud_rate' is 9600, ignored: "
                                            rf"'{re.escape(address)}' is an instrument's own "
                                            r"Ethernet \(VXI-11 or HiSLIP\) address"):
        lockin = parse_profile(text, Path("/lab/p.toml")).lockin
    assert (lockin.link.timeout_s, lockin.link.baud_rate) == (1.0, 9600)


def _lab_edited(repo: Path, old: str, new: str) -> str:
    """The example lab profile with `old` (found once) replaced by `new`."""
    text = (repo / "configs" / "example-lab.toml").read_text()
    assert text.count(old) == 1
    return text.replace(old, new)


SOCKET = "TCPIP0::10.0.0.7::4001::SOCKET"
NO_LINE = "with no serial line this program sets or times"


@pytest.mark.parametrize(("old", "new", "said"), [
    ('address = "GPIB0::8::INSTR"\n', 'address = "GPIB0::8::INSTR"\nbaud_rate = 19200\n',
     f"key 'lockin.baud_rate' is 19200, ignored: 'GPIB0::8::INSTR' is a GPIB address, {NO_LINE}"
     "; expected no key, or a serial address (ASRL or serial:) with it"),
    ('address = "GPIB0::8::INSTR"\n', 'address = "USB0::0xB506::0x2000::003223::INSTR"\n'
     'baud_rate = 9600\n', "key 'lockin.baud_rate' is 9600, ignored: "
     f"'USB0::0xB506::0x2000::003223::INSTR' is a USB address, {NO_LINE}"),
    ('address = "ASRL/dev/ttyUSB0::INSTR"\n', f'address = "{SOCKET}"\n',
     f"key 'stage.baud_rate' is 115200, ignored: '{SOCKET}' is a LAN socket address, {NO_LINE} "
     "(the serial line behind a serial-to-Ethernet server is taken into account for a "
     "lock-in's buffer only)"),
    ('safe_state = "zero"\n', 'safe_state = "zero"\nbaud_rate = 9600\n',
     f"key 'coils.baud_rate' is 9600, ignored: 'GPIB0::1::INSTR' is a GPIB address, {NO_LINE}"),
    ("channels = [101, 102, 103]\n", "channels = [101, 102, 103]\nbaud_rate = 9600\n",
     f"key 'fluxgate.baud_rate' is 9600, ignored: 'GPIB0::22::INSTR' is a GPIB address, "
     f"{NO_LINE}"),
])
def test_a_baud_rate_on_an_address_with_no_serial_line_is_warned_of_as_ignored(
        repo: Path, old: str, new: str, said: str) -> None:
    """A profile copied from a serial setup keeps its `baud_rate` where the address now
    reaches no serial line (GPIB, USB, a socket in front of a stage): it loads, as it works
    without the key, and the key is said to be ignored, naming it, its value and the
    address (unfixed: accepted silently, the user left thinking the rate was set)."""
    from smm_daq.instruments.profile import ProfileWarning

    with pytest.warns(ProfileWarning) as caught:
        parse_profile(_lab_edited(repo, old, new), Path("/lab/p.toml"))
    messages = [str(w.message) for w in caught if issubclass(w.category, ProfileWarning)]
    assert len(messages) == 1 and messages[0].startswith(f"/lab/p.toml: {said}"), messages


@pytest.mark.parametrize(("model", "lines"), [
    ("sr830", 'address = "ASRL/dev/ttyS0::INSTR"\nbaud_rate = 19200\n'),
    ("sr830", 'address = "serial:/dev/ttyS0"\nbaud_rate = 19200\n'),
    ("sr830", f'address = "{SERVER}"\ninterface = "rs232"\nbaud_rate = 19200\n'),
    ("sr860", f'address = "{SERVER}"\nbaud_rate = 115200\n'),
])
def test_a_baud_rate_a_serial_line_takes_is_not_warned_of(repo: Path, model: str,
                                                           lines: str) -> None:
    """A serial port's rate, or the line's behind a serial-to-Ethernet server that a lock-in's
    buffer reads are sized by, is used: nothing said (the stage's serial port neither)."""
    import warnings

    text = _lab_lockin(repo, lines).replace('implementation = "sr830"',
                                            f'implementation = "{model}"')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_profile(text, Path("/lab/p.toml")).lockin.link.baud_rate is not None
        simulated = _edited(repo, 'address = "GPIB0::8::INSTR"',
                            'address = "GPIB0::8::INSTR"\nbaud_rate = 19200')
        parse_profile(simulated, Path("/lab/p.toml"))  # an emulator's name, not a port


@pytest.mark.parametrize("alias", ["COM3", "PIStage"])
def test_a_baud_rate_on_a_visa_alias_is_not_said_to_be_ignored(repo: Path, alias: str) -> None:
    """A VISA alias (a Windows port name, a name the VISA configuration gives) may open a
    serial port, whose rate the profile's `baud_rate` sets (`VisaTransport.open`): nothing
    is said of it (unfixed: 'ignored ... expected no key', which, followed, left the port at
    its default rate)."""
    import warnings

    text = _lab_edited(repo, 'address = "ASRL/dev/ttyUSB0::INSTR"\n', f'address = "{alias}"\n')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        stage = parse_profile(text, Path("/lab/p.toml")).stage
    assert (stage.link.address, stage.link.baud_rate) == (alias, 115200)
