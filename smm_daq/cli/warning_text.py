"""A warning as the commands say it on stderr, one line: smm-daq's own (a warning of a category
smm-daq defines: a singular system, a mask that excludes nothing) as 'smm-daq: warning:
MESSAGE', and any other labelled with where it came from, 'smm-daq: warning (numpy):
MESSAGE', so that a library's remark (numpy, SciPy, h5py) does not read as smm-daq's
finding about the user's data. A `Note` (the expected outcome told) is 'smm-daq: note:
MESSAGE': not a fault."""

from __future__ import annotations

import sys
import warnings

from smm_daq import PROGRAM_NAME
from smm_daq.errors import Note


def is_smm_daqs(category: type[Warning]) -> bool:
    """Whether the category is one smm-daq defines (every warning of its own has one)."""
    return _package(category.__module__) == "smm_daq"


def origin(category: type[Warning], filename: str) -> str:
    """Where a warning not smm-daq's came from: the package that defines its category (SciPy's
    LinAlgWarning, h5py's H5pyDeprecationWarning); for one of Python's own categories, the
    package whose code warned; else (Python's category, warned from smm-daq's own lines, as
    NumPy's arithmetic warnings are: "divide by zero encountered") the category's name."""
    package = _package(category.__module__)
    if package not in ("builtins", "warnings"):
        return package
    warned = next((name for name, module in list(sys.modules.items())
                   if getattr(module, "__file__", None) == filename), None)
    if warned is not None and _package(warned) != "smm_daq":
        return _package(warned)
    return category.__name__


def said_as(category: type[Warning]) -> str:
    """"note" for a `Note` (the expected outcome told), else "warning"."""
    return "note" if issubclass(category, Note) else "warning"


def warning_line(w: warnings.WarningMessage) -> str:
    """The line a command prints for a warning it caught (no newline)."""
    if is_smm_daqs(w.category):
        return f"{PROGRAM_NAME}: {said_as(w.category)}: {w.message}"
    return f"{PROGRAM_NAME}: warning ({origin(w.category, w.filename)}): {w.message}"


def _package(module: str) -> str:
    return module.split(".")[0]
