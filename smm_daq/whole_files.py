"""Files written whole or not at all (CSV, PNG exports).

A write that fails part-way (a full disk, a quota, a file size limit, Ctrl-C) must not leave a
file that looks like a finished export but holds only its first rows, nor cut short the
complete file an --overwrite was to replace. So the content goes to a hidden file beside the
target, which takes the target's name only once it is whole (`os.replace`, atomic on one file
system); on any failure the hidden file is removed and the target is as it was.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield a path to write the content of `path` to; it becomes `path` when the block ends
    without an exception, and is removed otherwise. The file keeps the permissions a new file
    gets (the umask's), or those of the file it replaces."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.part")
    mode = 0o666
    with contextlib.suppress(OSError):
        mode = target.stat().st_mode & 0o7777
    # made here, with the mode, so that the writer that opens it again keeps it (not 0600)
    os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
    try:
        if mode != 0o666:
            os.chmod(temporary, mode)  # an existing file's mode, not reduced by the umask
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
