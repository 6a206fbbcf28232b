"""How long `needs_repair` takes to judge a current session file holding many objects (it
reads every object's header from the file's bytes):

    python benchmarks/intact_many_objects.py [--objects 20000] [--repeat 5]

Prints the minimum and median time of a judgement, and the time per object.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME, __version__
from smm_daq.storage.h5file import LIBVER
from smm_daq.storage.intact import needs_repair


def _session_file(path: Path, objects: int) -> None:
    """An intact, current session file of `objects` small datasets (each with a `units`
    attribute) in groups of 100."""
    with h5py.File(path, "w", libver=LIBVER, track_order=True) as f:
        f.attrs["creator"] = f"{PROGRAM_NAME} {__version__}"
        for i in range(objects):
            f.create_dataset(f"e{i // 100}/x{i}", data=np.arange(4.0)).attrs["units"] = "m"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.h5"
        _session_file(path, args.objects)
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            assert needs_repair(path) is False
            times.append(time.perf_counter() - start)
    best, median = min(times), statistics.median(times)
    print(f"needs_repair, {args.objects} objects: min {best:.3f} s, median {median:.3f} s "
          f"({1e6 * best / args.objects:.1f} µs per object)")


if __name__ == "__main__":
    main()
