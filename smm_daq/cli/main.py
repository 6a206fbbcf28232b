"""Entry point of the `smm-daq` command.

Sub-commands are contributed by modules named in the `smm_daq.commands` entry-point group
(pyproject.toml), each a `register(subparsers)` function that adds parsers whose `func`
takes the parsed arguments and returns an exit code. So the core never imports the GUI or a
driver by name, and a new area adds commands without touching this file.

Exit codes: 0 success; 1 an instrument or run failure (rig made safe); 2 bad input (a clear
message, no traceback); 3 a write to the session file that has not returned (a stalled disk)
once the rig was made safe, on Ctrl-C or a signal or at the scan's end: the program ends
without it, the rig closed, the message says what is left unwritten (the file is as a crash
leaves it); 130 interrupted by Ctrl-C or a termination signal (rig made safe by whoever was
running; one stopped before its connect says the rig is as it was). Ctrl-C, SIGTERM and
SIGHUP all take the Ctrl-C path; only the first one
interrupts, later ones are acknowledged while the rig is made safe (`smm_daq.interrupts`).
An error's notes (`add_note`: e.g. whether the rig is safe after connecting failed) follow its
message, a line each.
"""

from __future__ import annotations

import argparse
import errno
import gc
import io
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from smm_daq import PROGRAM_NAME, __version__, interrupts, thread_waits
from smm_daq.cli.args import given_words
from smm_daq.cli.option_hints import unknown_options
from smm_daq.cli.warning_text import is_smm_daqs, said_as
from smm_daq.errors import InputError, SmmError, WriteStalled
from smm_daq.plugins import registered

# idle OpenBLAS and OpenMP threads sleep soon (they spun, taking the cores from each other's
# work in an MMT inversion); before NumPy loads OpenBLAS
thread_waits.quiet_idle_threads()

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_WRITE_STALLED = 3
EXIT_INTERRUPTED = 130

# what a command that drives the rig (its parser's `drives_rig`) says, stopped before connecting
NOT_CONNECTED = ("the rig is as it was: stopped before connecting to it, nothing was set or "
                 "moved")


# Python's own form of a warning: the file and line that warned, then that line of source,
# and for a ResourceWarning where tracemalloc traces (python -X tracemalloc=5) the lines
# "Object allocated at". `warnings.formatwarning`, the public hook, is handed no object and
# Python then drops those lines, so smm-daq's form goes in at the step that calls it.
# A Python without that private step gets smm-daq's form through the public hook instead.
_PRIVATE_STEP = hasattr(warnings, "_formatwarnmsg")


def _python_warning_text(w: warnings.WarningMessage) -> str:
    if _PRIVATE_STEP:
        return _PYTHON_STEP(w)
    return _PYTHON_FORM(str(w.message), w.category, w.filename, w.lineno, w.line)


_PYTHON_STEP = getattr(warnings, "_formatwarnmsg", None)
_PYTHON_FORM = warnings.formatwarning


def _warning_text(w: warnings.WarningMessage) -> str:
    """smm-daq's own warnings (a profile key the instrument named ignores, say), where one
    reaches stderr, in the form the commands print theirs, 'smm-daq: warning: MESSAGE' (a
    note's 'smm-daq: note: MESSAGE'), not as Python's source path and line of the code that
    warned; any other in Python's form.
    The warning filters (-W, PYTHONWARNINGS) still decide whether a warning is said."""
    if is_smm_daqs(w.category):
        return f"{PROGRAM_NAME}: {said_as(w.category)}: {w.message}\n"
    return _python_warning_text(w)


def _install_warning_form() -> None:
    if _PRIVATE_STEP:
        warnings._formatwarnmsg = _warning_text  # type: ignore[attr-defined]
    else:
        warnings.formatwarning = lambda message, category, filename, lineno, line=None: (
            _warning_text(warnings.WarningMessage(message, category, filename, lineno,
                                                  line=line)))


# A value such as "-100,50" (µm) or "-40,0,0" (µT) is a negative number list, not an option.
_NUMBER = r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"
_NEGATIVE_NUMBERS = re.compile(rf"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?(,{_NUMBER})*$")


class _Parser(argparse.ArgumentParser):
    """argparse exits with 2 on bad usage already; keep its message, drop nothing. Values that
    are comma-separated lists starting with a negative number are taken as values (argparse
    alone takes only a single negative number so, and reports "-100,50" as an unknown
    option)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._negative_number_matcher = _NEGATIVE_NUMBERS
        self._root: _Parser = self  # the program's parser, which holds the words given
        self._given: list[str] = []

    def parse_known_args(self, args: Sequence[str] | None = None,
                         namespace: argparse.Namespace | None = None
                         ) -> tuple[argparse.Namespace, list[str]]:
        if self._root is self:
            self._given = list(sys.argv[1:] if args is None else args)
            self._adopt(self)
        return super().parse_known_args(args, namespace)

    def _adopt(self, root: _Parser) -> None:
        """Point every command's parser at `root`, so each names unknown options alike."""
        for action in self._actions:
            if isinstance(action, argparse._SubParsersAction):
                for parser in action.choices.values():
                    if isinstance(parser, _Parser):
                        parser._root = root
                        parser._adopt(root)

    def error(self, message: str) -> NoReturn:
        """argparse names a required option missing before an unknown one given (an option
        typed with '_' for '-', --step_um, then reads as missing), or the word after an
        unknown option as an invalid command. Name the unknown ones, with the option each
        most likely meant, whichever parser reports."""
        named = set()
        if message.startswith("unrecognized arguments: "):
            named = {w.split("=", 1)[0] for w in message.split(": ", 1)[1].split()}
        hints = [f"{option} ({hint})" if hint else option
                 for option, hint in unknown_options(self._root, self._root._given)
                 if hint or option not in named]
        if hints:
            message += "; unknown option " + ", ".join(hints)
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROGRAM_NAME, description="Scanning magnetic microscope: acquisition and analysis."
    )
    parser.add_argument("--version", action="version", version=f"{PROGRAM_NAME} {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for _name, ep in sorted(registered("smm_daq.commands").items()):
        ep.load()(sub)
    _describe(parser)
    return parser


def _describe(parser: argparse.ArgumentParser) -> None:
    """Give each command without a description of its own the line the command list shows
    for it, so that its --help says what it does (`smm-daq info --help` said nothing)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help for choice in action._choices_actions}
            for name, command in action.choices.items():
                if command.description is None and summaries.get(name):
                    summary = str(summaries[name])
                    # a symbol begins some ('χ map ...'): its capital is another symbol
                    first = summary[0].upper() if summary[0].isascii() else summary[0]
                    command.description = first + summary[1:] + "."
                _describe(command)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:  # the program itself (a test's call leaves the process as it was)
        _console_never_fails()
        _install_warning_form()
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:  # run as the program (argv None): late signals stay acknowledged until it ends
        with interrupts.installed(restore=argv is not None), given_words(argv):
            code = int(func(args) or EXIT_OK)
        if argv is None:
            _before_exit()
        return code
    except InputError as exc:
        _report(f"error: {exc}", exc)
        return EXIT_BAD_INPUT
    except WriteStalled as exc:  # the scan's session closed it with the rig made safe
        _report(f"stopped: {exc}", exc)
        if argv is None:
            leave_now(EXIT_WRITE_STALLED)
        return EXIT_WRITE_STALLED
    except SmmError as exc:
        _report(f"failed: {exc}", exc)
        return EXIT_FAILED
    except KeyboardInterrupt as exc:
        if getattr(args, "drives_rig", False) and not interrupts.connect_began():
            exc.add_note(NOT_CONNECTED)
        _report(f"interrupted ({exc or 'Ctrl-C'})", exc)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into `head` and the like: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        _report(f"error: {name_too_long(exc)}", exc)  # a path typed: any reader may meet it
        return EXIT_BAD_INPUT


def name_too_long(exc: OSError) -> str:
    """What to say of a path the file system refused as too long (ENAMETOOLONG)."""
    name = exc.filename
    if not isinstance(name, str | bytes | os.PathLike):
        return f"a path is too long for the file system ({exc.strerror}); expected a shorter one"
    parts = Path(os.fsdecode(name)).parts
    longest = max((len(os.fsencode(part)) for part in parts), default=0)
    return (f"{os.fsdecode(name)}: the path is too long for the file system (its longest name "
            f"is {longest} bytes, the whole {len(os.fsencode(name))}); expected a shorter "
            "name and path")


def leave_now(code: int) -> NoReturn:
    """End the program at once with `code`, skipping the interpreter's finalization: a
    scan's write left to a stalled disk holds h5py's lock (a write blocked inside HDF5 does),
    and the finalization of h5py's objects waits for that lock forever. Whoever calls it has
    made the rig safe and closed it; the file is as a crash leaves it."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _console_never_fails() -> None:
    """Output that stdout's encoding has no character for (χ, λ, − and √ in cp1252, which
    Windows uses for output redirected to a file or a pipe) is printed with '?' in its place
    rather than ending the command with UnicodeEncodeError; stderr never fails already (Python
    writes it with backslash escapes)."""
    if isinstance(sys.stdout, io.TextIOWrapper) and sys.stdout.errors == "strict":
        sys.stdout.reconfigure(errors="replace")


def _report(message: str, exc: BaseException) -> None:
    for line in (message, *getattr(exc, "__notes__", ())):
        print(f"{PROGRAM_NAME}: {line}", file=sys.stderr)


def _before_exit() -> None:
    """The program ends next. The interpreter's last garbage collection would walk every
    object left, by the hundred thousand once numba and SciPy are loaded (0.2 s after an MMT
    inversion); frozen, they are left to the process's end, which returns their memory
    anyway. Only objects in reference cycles are left unfinalized; the commands have closed
    their files by then."""
    gc.freeze()


if __name__ == "__main__":
    sys.exit(main())

