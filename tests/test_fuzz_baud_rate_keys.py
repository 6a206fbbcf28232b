"""Fuzzing `baud_rate` (and the serial keys beside it) on every link section of a profile and
every kind of address (`smm_daq/instruments/serial_keys.py`): ASRL and `serial:` ports, GPIB,
USB, an instrument's own VXI-11 or HiSLIP device, a LAN socket, a VISA alias, malformed
addresses. Each drawn profile must load silently where the key sets a serial line (or may: an
alias), load with one warning naming the key and the address where it cannot, or be refused
with one message naming the key and what was expected (exit 2 from `check`), never a
traceback, the profile unchanged.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from fuzz_harness import Case, run_all
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from smm_daq.errors import InputError
from smm_daq.instruments.profile import ProfileWarning, parse_profile

REPO = Path(__file__).resolve().parents[1]
LAB = (REPO / "configs" / "example-lab.toml").read_text()
SERIAL = ["ASRL/dev/ttyUSB0::INSTR", "ASRL3::INSTR", "asrl1::instr", "serial:/dev/ttyS0",
          " ASRL4::INSTR "]
NOT_SERIAL = ["GPIB0::9::INSTR", "gpib1::3::instr", "USB0::0x1234::0x5678::SN1::INSTR",
              "TCPIP0::10.0.0.5::inst0::INSTR", "TCPIP::host::hislip0::INSTR",
              "TCPIP0::10.0.0.5::4001::SOCKET", "tcpip0::h::4001::socket",
              "TCPIP0::h::COM1,488::INSTR", "PXI0::1::INSTR", "::", "GPIB", "GPIB0::9::INSTR\n"]
ALIASES = ["COM3", "mystage", "ASRL", "a" * 300, "stage\u202e"]
BLANK = ["", " ", "\t", "\u3000"]  # no address at all: refused
BAUDS = ["9600", "115200", "300", "4000000", "0", "-9600", "1.5", "9600.0", '"9600"', "true",
         "[]", "{}", "1e6", "99999999999999999999", "nan", "inf", '""']
SECTIONS = {"stage": "address", "fluxgate": "address", "lockin": "address",
            "coils": "addresses"}


def _profile(section: str, address: str, baud: str | None) -> str:
    """The example lab's profile, `section`'s address and baud_rate replaced."""
    key = SECTIONS[section]
    head, rest = LAB.split(f"[{section}]\n", 1)
    table, sep, tail = rest.partition("\n[")
    lines = [ln for ln in table.splitlines() if not re.match(rf"({key}|baud_rate) =", ln)]
    quoted = '"' + address.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    value = f"[{quoted}, {quoted}, {quoted}]" if key == "addresses" else quoted
    keys = [f"{key} = {value}"] + ([f"baud_rate = {baud}"] if baud is not None else [])
    return head + f"[{section}]\n" + "\n".join(keys + lines) + sep + tail + "\n" * (not sep)


@settings(max_examples=200, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(section=st.sampled_from(list(SECTIONS)),
       address=st.sampled_from(SERIAL + NOT_SERIAL + ALIASES + BLANK),
       baud=st.one_of(st.none(), st.sampled_from(BAUDS)))
@example(section="coils", address="\t", baud=None)  # blanks alone were taken as an address
def test_a_baud_rate_on_any_address_loads_warns_or_is_refused_naming_the_key(
        tmp_path: Path, section: str, address: str, baud: str | None) -> None:
    text = _profile(section, address, baud)
    path = tmp_path / "lab.toml"
    path.write_text(text)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            parse_profile(text, path)
    except InputError as exc:
        message = str(exc)
        assert "expected" in message and "lab.toml" in message, message
        assert section in message, message
        _, failures = run_all([Case("baud_rate", repr((section, address, baud)),
                                    ["check", "--profile", str(path)], [path], [],
                                    ["lab.toml", section])])
        assert not failures, "\n".join(failures)
        return
    assert address not in BLANK, (section, address, "taken")  # was, blanks alone
    said = [str(w.message) for w in caught if issubclass(w.category, ProfileWarning)]
    assert baud not in BAUDS[4:], (section, address, baud, "taken")  # no nonsense taken
    serial = address in SERIAL or (section == "lockin" and "SOCKET" in address.upper())
    if baud is None or serial or address in ALIASES:
        assert not said, said
        return
    assert len(said) == 1, said
    assert f"'{section}.baud_rate' is {baud}, ignored" in said[0], said
    assert repr(address) in said[0] and "expected" in said[0], said
