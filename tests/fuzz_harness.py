"""Running malformed inputs through the command line and judging how each was refused.

A case is one `smm-daq` command line with the files it reads. It passes when the command
ends with exit code 2 and a single `smm-daq: error:` line that names the file, key, line or
option (`mention`) and says what was expected; with no traceback; with every file it was
given unchanged (hashed before and after) and no output written (`absent`). A case of
options that may all be valid (`may_pass`) passes too when the command ends with exit code 0,
no traceback and the files it was given unchanged.
"""

from __future__ import annotations

import hashlib
import io
import traceback
import warnings
from collections.abc import Iterable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

from smm_daq.cli import main as cli_main
from smm_daq.cli.main import main

# One parser for all cases: building it loads every command's entry point (about 25 ms),
# which would be most of a refused case's time. argparse parsers are reusable.
_PARSER = cli_main.build_parser()


@dataclass
class Case:
    kind: str  # the input kind, for the counts: "profile", "recipe", "grains", ...
    label: str  # what is wrong, for the report
    argv: list[str]
    watched: list[Path] = field(default_factory=list)  # files that must not change
    absent: list[Path] = field(default_factory=list)  # outputs that must not appear
    mention: list[str] = field(default_factory=list)  # the message names each of these
    any_of: list[str] = field(default_factory=list)  # ... and at least one of these
    may_pass: bool = False  # exit 0 is right too: the options may all be valid


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def judge(case: Case) -> str | None:
    """None when the case was refused cleanly (or, `may_pass`, ran cleanly), else what went
    wrong."""
    for p in case.absent:  # left by an earlier case that was (wrongly) accepted
        p.unlink(missing_ok=True)
    before = {p: _digest(p) for p in case.watched}
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # overflow, invalid value: unchecked
            code = main(case.argv)
    except SystemExit as stop:  # argparse's own refusals
        code = stop.code
    except BaseException as exc:  # a traceback is what the fuzzing looks for
        tb = traceback.format_exception(exc)
        return f"traceback {type(exc).__name__}: {exc} ... {''.join(tb[-3:])}"
    problems = []
    text = err.getvalue()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("smm-daq: error:") or ": error:" in ln]
    passed = case.may_pass and code == 0
    if code != 2 and not passed:
        problems.append(f"exit {code}")
    if "Traceback" in text:
        problems.append("traceback on stderr")
    if not passed:
        problems += _refusal_problems(case, text, errors)
        problems += [f"{p.name} was written" for p in case.absent if p.exists()]
    for p, digest in before.items():
        if _digest(p) != digest:
            problems.append(f"{p.name} changed")
    if problems:
        return "; ".join(problems) + f" | stderr: {text.strip()[-400:]!r}"
    return None


def _refusal_problems(case: Case, text: str, errors: list[str]) -> list[str]:
    """What is wrong with a refusal's message: one error line, naming `mention`, saying what
    was expected."""
    if len(errors) != 1:
        return [f"{len(errors)} error lines"]
    msg = errors[0]
    problems = []
    missing = [m for m in case.mention if m not in msg]
    if missing:
        problems.append(f"message does not name {missing}")
    if case.any_of and not any(m in msg for m in case.any_of):
        problems.append(f"message names none of {case.any_of}")
    if "expected" not in msg and "usage" not in text and "invalid" not in msg:
        problems.append("message does not say what was expected")
    return problems


def run_all(cases: Iterable[Case]) -> tuple[dict[str, int], list[str]]:
    """Counts of cases per kind, and one line per case that was not refused cleanly."""
    counts: dict[str, int] = {}
    failures = []
    build = cli_main.build_parser
    cli_main.build_parser = lambda: _PARSER  # type: ignore[assignment]
    try:
        for case in cases:
            counts[case.kind] = counts.get(case.kind, 0) + 1
            problem = judge(case)
            if problem is not None:
                failures.append(f"[{case.kind}] {case.label}: {' '.join(case.argv)}\n"
                                f"    {problem}")
    finally:
        cli_main.build_parser = build  # type: ignore[assignment]
    return counts, failures
