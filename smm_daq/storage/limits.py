"""The largest map smm-daq writes and reads back, apart from the storage code that enforces it,
so that the scan planner and the command line's parser can name it without loading HDF5."""

from smm_daq.errors import InputError

# The most pixels a map holds, read or written: 5000 × 5000, a 25 mm sample at 5 µm (a scan
# plan's most points; beyond it the file and the hours run away). A damaged or foreign file
# may state any shape (a chunked dataset of 10^6 × 10^6 fill values takes a few kB on disk),
# and reading it whole would ask for terabytes.
MAX_MAP_PIXELS = 25_000_000


def check_map_pixels(ny: int, nx: int, what: str, where: str) -> None:
    """InputError when a map of `ny` × `nx` pixels (`what`: "the map", "entry 'a'") is more
    than MAX_MAP_PIXELS, the most smm-daq reads back: refused before it is read or written."""
    if ny * nx > MAX_MAP_PIXELS:
        raise InputError(f"{what} is {nx:,} × {ny:,} pixels ({nx * ny:,}); expected at most "
                         f"{MAX_MAP_PIXELS:,} pixels (a coarser map, or a part of it)",
                         source=where)
