"""What a link's failure says: a command the instrument did not take (a write, which has no
reply) is said as not taken, not as a reply missing; and a long command is quoted cut short,
its length said, so that the message stays readable."""

from __future__ import annotations

import pytest

from drivers.link import Link, parse_float
from smm_daq.errors import InstrumentLost, InstrumentTimeout

LONG = "DATA " + "1," * 1_997 + "1"  # 4,000 characters


class Stuck:
    """A transport whose instrument takes no more input (every write times out), or whose
    link is gone (`gone`: every operation fails as a reset socket does, naming no
    instrument), or that answers every query with garbage."""

    def __init__(self, gone: bool = False) -> None:
        self.gone = gone
        self.timeout = 1.0

    def _lost(self) -> None:
        if self.gone:
            raise InstrumentLost("link failed: connection reset", instrument="tcp:1.2.3.4")

    def write(self, message: str) -> None:
        self._lost()
        raise InstrumentTimeout(
            "could not send within 1 s (the instrument takes no more input)", instrument="dev"
        )

    def query(self, message: str) -> str:
        self._lost()
        return "#garbage"

    def read(self) -> str:
        raise InstrumentTimeout("no reply within 1 s", instrument="dev")

    def clear(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_a_write_not_taken_is_said_as_not_taken_not_as_a_missing_reply() -> None:
    link = Link(Stuck(), name="dev", retries=2)
    with pytest.raises(InstrumentLost) as info:
        link.write("OUTP ON")
    assert str(info.value) == (
        "dev: 'OUTP ON' not taken after 3 attempts (last: dev: could not send within 1 s (the "
        "instrument takes no more input))"
    )


def test_a_query_without_a_valid_reply_is_said_as_before() -> None:
    link = Link(Stuck(), name="dev", retries=0)
    with pytest.raises(InstrumentLost) as info:
        link.query("V?", parse_float)
    assert str(info.value) == (
        "dev: no valid reply to 'V?' after 1 attempt (last: expected a number, got '#garbage')"
    )


@pytest.mark.parametrize("exchange", ["write", "query", "gone"])
def test_a_long_command_is_quoted_cut_short_with_its_length(exchange: str) -> None:
    link = Link(Stuck(gone=exchange == "gone"), name="dev", retries=1)
    with pytest.raises(InstrumentLost) as info:
        if exchange == "write":
            link.write(LONG)
        else:
            link.query(LONG, parse_float)
    said = str(info.value)
    assert "'DATA 1,1,1," in said and "... (4000 characters)" in said, said[:300]
    assert len(said) < 250, said[:300]
