"""Where an HDF5 file keeps its stored values, found by HDF5 in a process of its own.

Run bytes that look like a damaged global heap collection (`smm_daq.storage.global_heap`)
may be a dataset's values (an array holding another file's bytes, a heap among them) and no
heap at all. HDF5 knows where each dataset's values lie (a contiguous dataset's one run, a
chunked one's chunks). A compact dataset's values and an attribute's are kept in its
object's header (or its attributes' own heap), which HDF5 gives no offset of: those that
hold a heap's signature are read as stored (no conversion) and found in the file's bytes,
each where the whole value is (a value of a type of variable length, heap references
itself, is not read: that would read the heap). Asking HDF5, though, opens every dataset,
and HDF5 opening a dataset of
text with a fill value reads that value from the global heap: on a damaged collection it
loops forever, in a call Python cannot interrupt. So the walk runs in a child process, which
reports each dataset as it is walked: one silent for `QUIET_S` is taken to hang there (the
heap is damaged) and stopped; one that has not said it started within `START_S` did not
hang in HDF5, and its silence says nothing of the file (`NotStarted`). Only a suspected
damage asks this, so reading a file costs no process.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

QUIET_S = 10.0  # a walk silent this long hangs in HDF5 (it reports every dataset it walks)
START_S = 30.0  # longest a child may take to start (import h5py: an antivirus scans it cold)
_STARTED = "walking"  # the child's first line: h5py imported (a slow start is no hang)
_HEAP_SIGNATURE = b"GCOL"
# a collection's header (signature, version, reserved bytes, its size in 8-byte lengths): a
# value kept in a header holds a look-alike only where it holds that whole header
_HEAP_HEADER = 16
_PIECE = 1 << 24  # bytes of the file read at a time, to find a value in it


class NotStarted(Exception):
    """The child said nothing within `START_S`, not even that it started (a start slowed
    by an antivirus scanning Python and h5py cold): HDF5 was not asked, nor did it hang."""


def data_extents(path: str | Path) -> list[tuple[int, int]] | None:
    """The [start, end) byte ranges of `path` holding datasets' stored values, merged and in
    order; None where HDF5 could not walk the file (it hung, or could not open it), or no
    process could be started to ask it; `NotStarted` where the child did not start in time.

    The child is this file run by its path with the current folder and the script's kept off
    its module path (`-P`: a folder holding an `h5py` of its own is not imported from), in
    the environment this process has (where it found h5py), and on Windows without a console
    window of its own."""
    if getattr(sys, "frozen", False) or not sys.executable:
        return None  # no Python to run it with (a frozen app's executable is the app itself)
    try:
        child = subprocess.Popen([sys.executable, "-P", str(Path(__file__).resolve()),
                                  str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 stdin=subprocess.DEVNULL, text=True,
                                 creationflags=getattr(subprocess, "CREATE_NO_WINDOW", 0))
    except OSError:  # no process to be had: the damage stands
        return None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_forward, args=(child, lines), daemon=True).start()
    extents: list[tuple[int, int]] = []
    walked = False
    try:
        try:
            first = lines.get(timeout=START_S)
        except queue.Empty:
            raise NotStarted from None
        if first == f"{_STARTED}\n":  # else it ended at once, or it is not its own output
            while (line := lines.get(timeout=QUIET_S)) is not None:
                numbers = [int(n) for n in line.split()]
                extents += zip(numbers[::2], numbers[1::2], strict=True)
            walked = child.wait(timeout=QUIET_S) == 0
    except (queue.Empty, ValueError, subprocess.TimeoutExpired):
        pass  # silent (hung in HDF5), or not its own output
    finally:  # also where this wait is cut short (Ctrl-C): a walk hung in HDF5 never ends
        if child.poll() is None:
            child.kill()
            child.wait()
    return _merged(extents) if walked else None


def _forward(child: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
    """Each line the child prints put in `lines`, then None once its output ends."""
    for line in child.stdout or ():
        lines.put(line)
    lines.put(None)


def _merged(extents: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(extents):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        elif end > start:
            out.append((start, end))
    return out


def _walk(path: str) -> None:
    """Print, for each object of `path`, one line of the byte ranges its values take
    ("start end start end ..."; empty where it keeps none in the file): a dataset's stored
    values, and then where in the file each value kept in a header that holds a heap's
    signature lies (`_in_headers`)."""
    import h5py

    print(_STARTED, flush=True)
    try:
        f = h5py.File(path, "r", locking=False)
    except OSError:  # left open by a killed SWMR writer
        f = h5py.File(path, "r", locking=False, swmr=True)
    with f:
        in_headers = _values_in_header(f.id)  # the root's attributes: not visited below

        def visit(name: bytes, info: h5py.h5o.ObjInfo) -> None:
            found: list[int] = []
            kept = h5py.h5o.open(f.id, name)
            in_headers.extend(_values_in_header(kept))
            if info.type == h5py.h5o.TYPE_DATASET:
                layout = kept.get_create_plist().get_layout()
                if layout == h5py.h5d.CONTIGUOUS and kept.get_offset() is not None:
                    found += [kept.get_offset(), kept.get_offset() + kept.get_storage_size()]
                elif layout == h5py.h5d.CHUNKED:
                    for chunk in _chunks(kept):
                        found += [chunk.byte_offset, chunk.byte_offset + chunk.size]
            print(" ".join(map(str, found)), flush=True)

        h5py.h5o.visit(f.id, visit, info=True)
    for value in in_headers:
        # Only where a collection's whole header lies within the value: each place the bytes
        # of a value holding little more than the signature lie (an attribute of 4 bytes,
        # b"GCOL") would be every collection of the file, a damaged one too.
        if len(value) < _HEAP_HEADER:
            continue
        # an empty line at each piece read: alive (the whole file may take a minute)
        found = [n for at in _occurrences(path, value, alive=lambda: print(flush=True))
                 for n in (at, at + len(value) - _HEAP_HEADER + 1)]
        print(" ".join(map(str, found)), flush=True)


def _values_in_header(kept: Any) -> list[bytes]:
    """The stored bytes of the values `kept` (an object open in HDF5) keeps in its header,
    its attributes' and, a compact dataset, its own, that hold a global heap's signature
    (the only ones asked about). Read in the type they are stored in: no conversion."""
    import h5py

    values: list[bytes] = []

    def stored(thing: Any, read: Callable[[np.ndarray, Any], object]) -> None:
        tid = thing.get_type()
        # not H5Aget_storage_size, which fails on some attributes (of text, of no value)
        size = tid.get_size() * thing.get_space().get_simple_extent_npoints()
        if not size or not _read_as_stored(tid):
            return
        buffer = np.empty(size, dtype=np.uint8)
        try:
            read(buffer, tid)
        except (RuntimeError, OSError, ValueError, TypeError):  # a value h5py cannot read
            return  # so: not known to be a value (the damage stands), the walk goes on
        if _HEAP_SIGNATURE in buffer.tobytes():
            values.append(buffer.tobytes())

    for i in range(h5py.h5a.get_num_attrs(kept)):
        attr = h5py.h5a.open(kept, index=i)
        stored(attr, lambda buffer, tid, attr=attr: attr.read(buffer, mtype=tid))
    if (isinstance(kept, h5py.h5d.DatasetID)
            and kept.get_create_plist().get_layout() == h5py.h5d.COMPACT):
        stored(kept, lambda buffer, tid: kept.read(h5py.h5s.ALL, h5py.h5s.ALL, buffer,
                                                   mtype=tid))
    return values


def _read_as_stored(tid: Any) -> bool:
    """Whether a value of type `tid` is read without HDF5 reading anything else: not one of
    variable length (text or sequences, kept in the global heap) nor a reference."""
    import h5py

    kind = tid.get_class()
    if kind == h5py.h5t.STRING:
        return not tid.is_variable_str()
    if kind in (h5py.h5t.VLEN, h5py.h5t.REFERENCE):
        return False
    if kind == h5py.h5t.COMPOUND:
        return all(_read_as_stored(tid.get_member_type(i)) for i in range(tid.get_nmembers()))
    if kind == h5py.h5t.ARRAY:
        return _read_as_stored(tid.get_super())
    return True


def _occurrences(path: str, value: bytes, *,
                 alive: Callable[[], None] = lambda: None) -> list[int]:
    """The offsets at which `value` lies in the file `path`, read in pieces (a value found
    across two pieces is found once); `alive` called at each piece read."""
    found: list[int] = []
    with open(path, "rb") as fh:
        offset = 0
        while piece := fh.read(_PIECE):
            alive()
            at = piece.find(value)
            while at >= 0:
                if not found or found[-1] != offset + at:
                    found.append(offset + at)
                at = piece.find(value, at + 1)
            if len(piece) < _PIECE:
                break
            offset += max(1, len(piece) - (len(value) - 1))
            fh.seek(offset)
    return found


def _chunks(dataset: object) -> list[object]:
    """The stored chunks of a chunked dataset: in one pass where h5py has it (HDF5 1.14),
    else one by one."""
    chunks: list[object] = []
    if hasattr(dataset, "chunk_iter"):
        dataset.chunk_iter(chunks.append)
        return chunks
    return [dataset.get_chunk_info(i)  # type: ignore[attr-defined]
            for i in range(dataset.get_num_chunks())]  # type: ignore[attr-defined]


if __name__ == "__main__":
    _walk(sys.argv[1])
