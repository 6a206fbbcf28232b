"""How long the window's poll that meets the rest of a stage reply cut short holds the rig's
thread on a raw socket (`TCPIP::host::port::SOCKET`), where the rest is dropped by the poll
itself (a new connection: `Link._drop_rest`), not aside as on a serial line.

    .venv/bin/python benchmarks/cut_reply_socket.py [--rounds 20]

The PI emulator is served on loopback; each round cuts its `HPA?` after the first line (the
make-safe deadline passed on a virtual clock), then times the poll (`POS?`) that drops the
rest, and a poll after it. The difference is the new connection: what a Stop queued behind
the poll waits for, and would wait for all the same were the drop made aside (the Stop needs
the connection it opens). Only an instrument that does not answer takes a timeout there, and
a Stop could not reach it either.
"""

from __future__ import annotations

import argparse
import statistics
import time

from drivers.pi_gcs import GCSLink
from drivers.transports import open_transport
from simulators.backend import SimulatedBackend
from smm_daq.clock import VirtualClock
from smm_daq.instruments import loss_budget
from smm_daq.instruments.loss_budget import DeadlineReached
from smm_daq.instruments.profile import load_profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    profile = load_profile()
    server = SimulatedBackend.serving(profile).serve_tcp()
    transport = open_transport(server.resources()[profile.stage.link.address],
                               profile.stage.link)
    link = GCSLink(transport, name="stage", budget=loss_budget.STAGE)
    clock = VirtualClock()
    query = transport.query

    def first_line_late(message: str) -> str:
        reply = query(message)
        clock.advance(1.0)  # past the deadline before the reply's next line
        return reply

    meeting, alone = [], []
    try:
        for _ in range(rounds):
            transport.query = first_line_late  # type: ignore[method-assign]
            with loss_budget.making_safe(5, stage=5, clock=clock, deadline_s=0.5):
                try:
                    link.query_lines("HPA?", lambda lines: lines)
                except DeadlineReached:
                    pass  # cut: the rest of the reply left to drop
                else:
                    raise SystemExit("HPA? was read whole: nothing to drop")
            transport.query = query  # type: ignore[method-assign]
            for times in (meeting, alone):
                t0 = time.perf_counter()
                link.query("POS? 1", lambda reply: reply)
                times.append(time.perf_counter() - t0)
    finally:
        transport.close()
        server.close()
    print(f"raw socket on loopback, {rounds} rounds: the poll that drops the rest of a cut "
          f"reply {statistics.median(meeting) * 1e3:.2f} ms (median; max "
          f"{max(meeting) * 1e3:.2f}), a poll after it {statistics.median(alone) * 1e3:.2f} "
          f"ms; the stage link's timeout {profile.stage.link.timeout_s:g} s")


if __name__ == "__main__":
    main()
