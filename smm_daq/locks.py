"""The machine's lock directory, shared by every smm-daq process of every user.

The rig's instrument locks (`smm_daq.instruments.rig_lock`) live here, and, where the system
has no open-file-description locks (Windows, macOS), the session files' locks
(`smm_daq.storage.h5file`). It is `<temporary directory>/smm-daq-locks`, or wherever
$SMM_DAQ_LOCK_DIR says: where the temporary directory is per user (Windows, macOS), point
SMM_DAQ_LOCK_DIR at a directory every user of the computer shares.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from smm_daq.errors import InputError

LOCK_DIR_ENV = "SMM_DAQ_LOCK_DIR"
LOCK_DIR_NAME = "smm-daq-locks"
# Every user of the machine must be able to lock here. Not sticky: under a sticky directory
# filelock refuses a lock file that another account created.
DIR_MODE = 0o777
FILE_MODE = 0o666


def lock_directory() -> Path:
    """The machine's lock directory, made (writable for every user) if it is not there."""
    configured = os.environ.get(LOCK_DIR_ENV)
    directory = Path(configured) if configured else Path(tempfile.gettempdir()) / LOCK_DIR_NAME
    try:
        directory.mkdir(parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise unusable(directory, exc) from exc
    else:
        os.chmod(directory, DIR_MODE)  # mkdir's mode is cut by the umask
    return directory


def unusable(directory: Path, exc: OSError) -> InputError:
    """The refusal of a lock directory that cannot be used, saying how to name another."""
    return InputError(f"the smm-daq lock directory {directory} cannot be used ({exc}); expected "
                      f"a directory every user of this machine can write: set {LOCK_DIR_ENV} "
                      "to one")
