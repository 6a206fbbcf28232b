"""A full disk for a test: RLIMIT_FSIZE makes the file system refuse a write past a size, as a
full disk or a quota refuses one (Python ignores the SIGXFSZ it would send)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

resource = pytest.importorskip("resource")  # a module importing this is skipped without it


@contextlib.contextmanager
def file_size_limit(size: int) -> Iterator[None]:
    """The file system refuses a write past `size` bytes, as a full disk would."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
