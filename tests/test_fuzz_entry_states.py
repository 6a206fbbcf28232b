"""Fuzzing session files holding random mixes of entries, groups a killed writer left (marked
as being written or replaced, an earlier release's staged entry), links (soft, external, to
nothing) and objects of other programs (datasets, plain groups), under entry names and the
names smm-daq writes an entry under before it is whole, and marks put on products there.
`info`, a reader (`export`), a
writer (`subtract --overwrite`) and `repair`, run in turn on each file, must each end with
exit 0 or 2 and no traceback, the reader read only what `info` lists as an entry, and
nothing acquired may be lost: each scan's bytes stay in
the file (the scans `rem` and `inf` under their names). The counts are printed (pytest -s).
"""

from __future__ import annotations

import io
import random
import shutil
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import h5py
import numpy as np
from test_storage_earlier_staging import _scans, _session, _subtract

from smm_daq.cli.main import main
from smm_daq.storage.nexus import list_entries
from smm_daq.storage.staging import REPLACED, STAGING, aside_name, staged_name

# Of the files of seeds 0..29, those that between them make every kind of object under every
# form of name (an entry's own, staged and set-aside), put every mark on a product under every
# form made so, have `export` read a name of each form and `subtract` write each name: what
# all thirty made (34 such pairs), in 11 runs of the four commands (the fewest seeds that do).
SEEDS = (0, 1, 5, 9, 13, 16, 17, 20, 21, 27, 29)
NAMES = ("rem", "inf", "induced", "a")


def _copy(mark: str | None) -> Callable[[h5py.File, str, random.Random, Path], None]:
    def make(f: h5py.File, key: str, rng: random.Random, tmp: Path) -> None:
        f.copy("induced", key)
        if mark:
            f[key].attrs[mark] = 1
    return make


def _acquired(f: h5py.File, key: str, rng: random.Random, tmp: Path) -> None:
    """A scan of its own (its Bz unlike any other's), unmarked: measured data."""
    f.copy("rem", key)
    f[key]["data/Bz"][...] = np.random.default_rng(rng.randrange(1 << 30)).normal(
        size=f[key]["data/Bz"].shape) * 1e-6


def _link(target: Callable[[random.Random], str]) -> Callable[..., None]:
    def make(f: h5py.File, key: str, rng: random.Random, tmp: Path) -> None:
        f[key] = h5py.SoftLink(target(rng))
    return make


def _external(f: h5py.File, key: str, rng: random.Random, tmp: Path) -> None:
    other = tmp / "other.h5"
    if not other.exists():
        with h5py.File(other, "w") as g:
            g.create_group("x").attrs["NX_class"] = "NXentry"
    f[key] = h5py.ExternalLink(rng.choice([other.name, "missing.h5"]), "/x")


MAKERS: dict[str, Callable[[h5py.File, str, random.Random, Path], None]] = {
    "product": _copy(None),
    "marked being written": _copy(STAGING),
    "marked replaced": _copy(REPLACED),
    "acquired scan": _acquired,
    "soft link": _link(lambda rng: "/" + rng.choice(NAMES)),
    "soft link to nothing": _link(lambda rng: "/nowhere"),
    "external link": _external,
    "dataset": lambda f, key, rng, tmp: f.create_dataset(key, data=[1.0]),
    "group": lambda f, key, rng, tmp: f.create_group(key),
}


def _mark(f: h5py.File, key: str, rng: random.Random) -> str | None:
    """A mark put on the product under `key` (as on one a killed writer was overwriting or
    moving in), or None where there is none (a scan is left as it is)."""
    node = f.get(key, getlink=True)
    if not (isinstance(node, h5py.HardLink) and isinstance(f[key], h5py.Group)
            and f[key].attrs.get("kind") == "induced"):
        return None
    mark = rng.choice([STAGING, REPLACED])
    f[key].attrs[mark] = 1
    return mark


def _keys(rng: random.Random) -> str:
    name = rng.choice(NAMES)
    return rng.choice([name, staged_name(name), aside_name(name)])


def _scans_bz(path: Path) -> set[bytes]:
    """The bytes of every scan's Bz in the file (each object once, through hard links)."""
    found: set[bytes] = set()
    with h5py.File(path, "r") as f:
        def visit(name: str, node: object) -> None:
            if (isinstance(node, h5py.Group) and node.attrs.get("kind") == "scan"
                    and isinstance(node.get("data/Bz"), h5py.Dataset)):
                found.add(np.asarray(node["data/Bz"][()]).tobytes())
        f.visititems(visit)
    return found


def _run(argv: list[str]) -> tuple[int | str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code: int | str = main(argv)
    except BaseException as exc:  # a traceback is what the fuzzing looks for
        code = f"{type(exc).__name__}: {exc}"
    return code, err.getvalue()


def test_no_mix_of_entries_links_and_leftovers_ends_in_a_traceback_or_loses_a_scan(
        tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    base = _session(tmp_path / "base")
    assert _subtract(base) == 0
    failures, counts = [], {"made": 0, "exit 0": 0, "exit 2": 0}
    for seed in SEEDS:
        rng = random.Random(seed)
        d = tmp_path / f"f{seed}"
        d.mkdir()
        path = d / "s.h5"
        shutil.copy(base, path)
        made = []
        with h5py.File(path, "a") as f:
            for _ in range(rng.randint(2, 6)):
                key, kind = _keys(rng), rng.choice(list(MAKERS))
                if f.get(key, getlink=True) is None:
                    MAKERS[kind](f, key, rng, d)
                    made.append(f"{kind} at {key!r}")
                elif rng.random() < 0.5 and (mark := _mark(f, key, rng)):
                    made.append(f"{mark} put on {key!r}")
        counts["made"] += len(made)
        acquired, scans = _scans_bz(path), _scans(path)
        listed = [e.name for e in list_entries(path)]
        name, read = rng.choice(NAMES), _keys(rng)
        for argv in (["info", str(path)],
                     ["export", str(path), "--entry", read, "--csv", str(d / "o.csv"),
                      "--overwrite"],
                     ["subtract", str(path), "--in-field", "inf", "--remanent", "rem",
                      "--name", name, "--no-register", "--overwrite"],
                     ["repair", str(path)]):
            code, err = _run(argv)
            problems = []
            if code not in (0, 2):
                problems.append(f"exit {code}")
            if "Traceback" in err or "Unable to" in err:
                problems.append(f"raw error: {err.strip()[-300:]}")
            if argv[0] == "export" and code == 0 and read not in listed:
                problems.append(f"read {read!r}, which info does not list as an entry")
            if not acquired <= _scans_bz(path) or _scans(path) != scans:
                problems.append("a scan was lost or changed")
            if problems:
                failures.append(f"seed {seed} [{'; '.join(made)}] {argv[0]}: "
                                + "; ".join(problems))
            else:
                counts[f"exit {code}"] += 1
    print(counts)
    assert not failures, f"{len(failures)} failures:\n" + "\n".join(failures)
