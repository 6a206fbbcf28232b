"""`smm-daq check` and `smm-daq serve-sim`: talk to a rig, or serve the simulated one over TCP."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from smm_daq.cli.args import MAX_SERVE_S, positive, within
from smm_daq.cli.args import time_scale as check_time_scale
from smm_daq.cli.served_profile import check_profile_out, write_served_profile
from smm_daq.errors import InputError, InstrumentError
from smm_daq.instruments.interfaces import Instrument
from smm_daq.instruments.profile import DEFAULT_PROFILE, Profile, load_profile
from smm_daq.instruments.rig import (
    Rig,
    looked_at_statement,
    simulator_class,
    stage_left_unreferenced,
)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `check` and `serve-sim`."""
    check = sub.add_parser(
        "check",
        help="connect to every instrument of a profile; print identity, ranges and readings",
        description="Connect to every instrument of a profile and print its identity, ranges "
        "and present readings; nothing moves (a stage's unreferenced axes are reported, not "
        "referenced). Exit 0 when all answer, 2 naming the one that does not.",
    )
    check.add_argument("--profile", default=str(DEFAULT_PROFILE),
                       help="instrument profile (default: the simulator, configs/simulator.toml)")
    check.set_defaults(func=run_check, drives_rig=True)

    serve = sub.add_parser(
        "serve-sim",
        help="serve the simulated instruments on loopback TCP ports for any VISA client",
        description="Serve each simulated instrument on its own 127.0.0.1 TCP port (raw "
        "socket, LF-terminated) and print its VISA resource string; until Ctrl-C or "
        "--duration-s.",
    )
    serve.add_argument("--profile", default=str(DEFAULT_PROFILE),
                       help="a simulated profile (default: the simulator, "
                            "configs/simulator.toml)")
    serve.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per real second (default 1: real time)",
    )
    serve.add_argument(
        "--duration-s", type=float, default=None, help="stop after this many real seconds"
    )
    serve.add_argument(
        "--profile-out", metavar="FILE", default=None,
        help="write the served instruments as a profile of real ones (the profile's text, "
             "each address the TCP resource its emulator is served at, rig.simulated = false, "
             "no [simulation]) for `smm-daq check/scan/run/resume/safe/gui --profile FILE`; "
             "written over only where serve-sim wrote it and no longer serves it; only at "
             "--time-scale 1, as those commands keep real time",
    )
    serve.set_defaults(func=run_serve_sim)


# --- check -------------------------------------------------------------------------------


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple | np.ndarray):
        return "[" + ", ".join(_format(v) for v in value) + "]"
    if isinstance(value, dict):
        return ", ".join(f"{k} {_format(v)}" for k, v in value.items())
    return str(value)


def _ranges(role: str, instrument: Any) -> dict[str, object]:
    if role == "stage":
        return {"travel_m": instrument.limits().tolist()}
    if role == "coils":
        return dict(instrument.limits())
    return {}


def describe(rig: Rig, out: TextIO) -> None:
    """Identity, ranges and present readings of every instrument. InstrumentError on silence."""
    sections = {
        "lockin": rig.profile.lockin,
        "stage": rig.profile.stage,
        "coils": rig.profile.coils,
        "fluxgate": rig.profile.fluxgate,
    }
    instruments: dict[str, Instrument] = rig.instruments()
    for role, instrument in instruments.items():
        link = sections[role].link  # type: ignore[union-attr]
        try:
            identity = instrument.identify()
            details = {**_ranges(role, instrument), **instrument.snapshot()}
        except InstrumentError as exc:
            error = type(exc)(
                f"{role} ({link.implementation} at {link.address}) does not answer: {exc}"
            )
            error.instrument = role
            raise error from exc
        print(f"{role}: {link.implementation} at {link.address}", file=out)
        print(f"  identity: {identity}", file=out)
        for key, value in details.items():
            if key != "identity":
                print(f"  {key}: {_format(value)}", file=out)


def run_check(args: argparse.Namespace) -> int:
    from smm_daq.instruments.rig import open_rig  # looked up at the call, as calibrate does

    profile = load_profile(args.profile)
    # A check moves nothing: a reference move is left to a scan's or the GUI's connect, and
    # unreferenced axes are reported instead.
    try:
        with open_rig(stage_left_unreferenced(profile), statement=looked_at_statement) as rig:
            print(f"rig '{profile.name}' ({profile.path})", file=sys.stdout)
            print(f"coil calibration: {_calibration_source(profile)}", file=sys.stdout)
            describe(rig, sys.stdout)
            unreferenced = rig.stage.unreferenced_axes()
    except InstrumentError as exc:
        error = InputError(str(exc))
        for note in getattr(exc, "__notes__", ()):  # how connecting left the rig
            error.add_note(note)
        raise error from exc
    if unreferenced:
        print(_unreferenced_note(profile, unreferenced), file=sys.stdout)
    print("every instrument answers", file=sys.stdout)
    return 0


def _unreferenced_note(profile: Profile, axes: list[str]) -> str:
    """What `check` says of stage axes it found unreferenced and left so."""
    note = f"stage: axes {axes} are not referenced; check did not reference them (nothing moved). "
    if profile.stage.reference_on_connect:
        return note + ("A scan or the GUI's connect will reference them first "
                       "(stage.reference_on_connect = true): each axis drives to its reference "
                       "switch, so keep the sensor clear of the sample")
    return note + ("A scan or the GUI's connect refuses them until they are referenced (FRF) "
                   "or stage.reference_on_connect = true")


def _calibration_source(profile: Profile) -> str:
    """Where the coil matrix in use comes from: a file that is missing is no error (it is
    where the first calibration will go) but would otherwise pass unnoticed, e.g. misspelt."""
    path = profile.calibration_file
    if path is None:
        return "the profile's own matrix (no rig.calibration_file)"
    if not path.exists():
        return (f"the profile's own matrix: {path} does not exist yet (`smm-daq "
                "calibrate-coils` writes it; a misspelt rig.calibration_file?)")
    return f"{path}"


# --- serve-sim ---------------------------------------------------------------------------


def serve(
    profile_path: str,
    *,
    time_scale: float,
    duration: float | None,
    out: TextIO,
    stop: threading.Event | None = None,
    profile_out: str | None = None,
) -> None:
    """Serve the profile's simulated instruments until `stop` is set or `duration` (s) ends;
    with `profile_out`, write them there as a profile of real instruments first."""
    check_time_scale(time_scale, zero_allowed=False)
    if profile_out is not None and time_scale != 1.0:
        raise InputError(
            f"--time-scale is {time_scale:.15g} with --profile-out; expected 1 (the default): the "
            "commands and the window that use the written profile keep real time, so a world "
            f"{time_scale:.15g}x faster fails their timing checks (a flown scan's lock-in buffer) "
            "and keeps its emulators catching up on samples instead of answering")
    if duration is not None:
        positive("--duration-s", duration)
        within("--duration-s", duration, 0.0, MAX_SERVE_S, " s")
    profile = load_profile(profile_path)
    if profile_out is not None:
        check_profile_out(Path(profile_out), profile)
    backend = simulator_class(profile).serving(profile, time_scale=time_scale)
    server = backend.serve_tcp()
    try:
        print(f"serving '{profile.name}' at {time_scale:g}× real time; Ctrl-C stops", file=out)
        resources = server.resources()
        for role, address in backend.addresses().items():
            print(f"{role:9s} {resources[address]}  (profile address {address})", file=out)
        if profile_out is not None:
            write_served_profile(Path(profile_out), profile, resources)
            print(f"profile   {profile_out}  (these instruments as real ones: --profile "
                  f"{profile_out})", file=out)
        out.flush()
        (stop or threading.Event()).wait(duration)
    finally:
        server.close()


def run_serve_sim(args: argparse.Namespace) -> int:
    try:
        serve(args.profile, time_scale=args.time_scale, duration=args.duration_s, out=sys.stdout,
              profile_out=args.profile_out)
    except KeyboardInterrupt:
        print("stopped", file=sys.stdout)
    return 0
