"""Fuzzing saved MMT result entries: from three small real results (a cuboid result, a joint
quadrupole result of two scans with a mask, and the cuboid one as written before layout
version 3), one thing at a time is spoiled with a seeded generator: a dataset, group or
attribute deleted, a string for a number, integers for floats, a row short, 2-D for 1-D, NaN
and inf, an empty array, a covariance block with a negative variance, asymmetric or with a
correlation of 2, a table value out of its column's range (a negative SD, moment, ratio or χ²,
a p-value or resolved flag outside [0, 1] or {0, 1}, a direction beyond its range, a depth
not -z), a version attribute that is no whole number, negative or huge, a cuboid table of
other labels, a scan listed without its group, the entry's fitted or residual map unlike the
first scan's copy. `read_result_entry` must read each (where the damage is harmless) or refuse
it with an InputError naming the file, the entry and the field, never another exception, and
leave the file's bytes as they were; a value no result holds there (`_harmful`) must be
refused, not read. Those are all run (of the grain table's non-finite values a sample), of
the others a seeded sample. A few spoiled files
also go through `smm-daq info` and `smm-daq export`. The counts are printed (pytest -s).
What a real result holds is read: an unresolved grain's +inf covariances, SDs and
uncertainty ratio, NaN direction SDs (`test_a_result_with_unresolved_grains_reads_back`).
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import shutil
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from test_gui_mmt import write_cuboid_session
from test_gui_mmt_saved import as_written_before_version_3, write_point_session

from smm_daq.analysis.grains import from_arrays
from smm_daq.analysis.mmt import synth
from smm_daq.analysis.mmt.result_file import RESULT_VERSION, write_result_entry
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, invert_map
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
SEED = 20261206
PER_SOURCE = 40  # harmless-or-not mutations drawn per source result (of those it offers)
COLUMNS = 25  # spoilt grain-table columns drawn per source (each must be refused)
# the layout version the results are written in, as a float: a whole number, no damage (the
# other versions offered are)
WHOLE_FLOAT = float(RESULT_VERSION)


@dataclass(frozen=True)
class Mutation:
    label: str
    names: tuple[str, ...]  # the message must name one of these (the field spoiled)
    spoil: Callable[[h5py.Group], None]




@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """The source results, made once: name -> (file, entry)."""
    tmp = tmp_path_factory.mktemp("sources")
    cuboid, grains = write_cuboid_session(tmp)
    assert main(["mmt", "invert", str(cuboid), "--entry", "scan", "--grains", str(grains),
                 "--out", str(tmp / "r.csv")]) == 0
    grains.unlink()  # the version-2 entry reads without its grain file too
    v2 = tmp / "v2.h5"
    shutil.copy(cuboid, v2)
    as_written_before_version_3(v2, "scan_mmt")
    joint, _csv = write_point_session(tmp, 2.0)  # 2 µm apart: a small joint result
    for path, entry in ((cuboid, "scan_mmt"), (v2, "scan_mmt"), (joint, "joint")):
        read_result_entry(path, entry)  # each reads as it is
    return {"cuboid": (cuboid, "scan_mmt"), "v2": (v2, "scan_mmt"), "joint": (joint, "joint")}


def _replace(g: h5py.Group, name: str, value: object) -> None:
    attrs = dict(g[name].attrs)
    del g[name]
    g[name] = value
    g[name].attrs.update(attrs)


def _set_first(name: str, value: float) -> Callable[[h5py.Group], None]:
    def spoil(g: h5py.Group) -> None:
        data = np.array(g[name][()], dtype=float)
        data.flat[0] = value
        _replace(g, name, data)
    return spoil


def _spoil_block(name: str, how: str, by: float = 0.5) -> Callable[[h5py.Group], None]:
    """Spoil the first grain's covariance block: a negative variance, C_01 alone moved by `by`
    sqrt(C_00 C_11) (asymmetric), or C_01 and C_10 both 2 sqrt(C_00 C_11) (a correlation of
    2)."""
    def spoil(g: h5py.Group) -> None:
        data = np.array(g[name][()], dtype=float)
        bound = math.sqrt(data[0, 0, 0] * data[0, 1, 1])
        if how == "negative":
            data[0, 0, 0] = -(data[0, 0, 0] or 1.0)
        elif how == "asymmetric":
            data[0, 0, 1] += by * bound
        else:
            data[0, 0, 1] = data[0, 1, 0] = 2 * bound
        _replace(g, name, data)
    return spoil


BLOCK_SPOILINGS = {"negative": "a negative variance", "asymmetric": "asymmetric",
                   "beyond": "a correlation of 2"}


def _impossible(stem: str) -> list[tuple[str, float | None]]:
    """Finite values no result holds in the grain table's column `stem` (as `grains` names
    it), for its first grain: (label, value), None for the stored value made negative (a
    depth: its sign flipped, no longer -z)."""
    if stem.endswith("_errors") or stem in ("uncertainty_ratio", "moment", "ssr",
                                            "higher_order_chi2"):
        return [("negative", None)]
    return {"higher_order_p": [("set to 1.5", 1.5), ("set to -0.5", -0.5)],
            "higher_order_resolved": [("set to 0.5", 0.5), ("set to 2", 2.0)],
            "declination": [("set to 360.5", 360.5), ("set to -0.5", -0.5)],
            "inclination": [("set to 90.5", 90.5), ("set to -90.5", -90.5)],
            "depth": [("of the wrong sign", None)]}.get(stem, [])


def _negate_first(name: str) -> Callable[[h5py.Group], None]:
    """The first value made negative (-1 where it is 0 or not finite; a depth's sign flipped
    too, so it is no longer -z)."""
    def spoil(g: h5py.Group) -> None:
        data = np.array(g[name][()], dtype=float)
        first = float(data.flat[0])
        data.flat[0] = -abs(first) if math.isfinite(first) and first != 0 else -1.0
        _replace(g, name, data)
    return spoil


def _unlike(name: str) -> Callable[[h5py.Group], None]:
    """Map `name`'s first measured pixel changed (doubled, or 1 nT where 0)."""
    def spoil(g: h5py.Group) -> None:
        data = np.array(g[name][()], dtype=float)
        at = int(np.argmax(np.isfinite(data.ravel())))
        data.flat[at] = 2 * data.flat[at] if data.flat[at] else 1e-9
        _replace(g, name, data)
    return spoil


def _dataset_mutations(name: str, node: h5py.Dataset) -> Iterator[Mutation]:
    parts = tuple(name.split("/"))
    names = (parts[-1], "/".join(parts[-2:]))
    if parts[0] == "grain_cuboids":  # cuboids not the table's grains: named as a whole
        names += ("grain_cuboids",)
    if parts[0] == "grains":  # a column, named as in the CSV: mx_errors as sd_mx_A_per_m
        names += (f"sd_{parts[-1][:-len('_errors')]}" if parts[-1].endswith("_errors")
                  else parts[-1],)
    shape, kind = node.shape, node.dtype.kind
    yield Mutation(f"{name} deleted", names, lambda g: g.__delitem__(name))
    if kind in "iufb":
        yield Mutation(f"{name} a string", names, lambda g: _replace(g, name, "oops"))
        if node.ndim >= 1 and node.size > 0:
            yield Mutation(f"{name} empty", names,
                           lambda g: _replace(g, name, np.zeros((0, *shape[1:]))))
            yield Mutation(f"{name} {node.ndim + 1}-D for {node.ndim}-D", names, lambda g: _replace(
                g, name, np.stack([g[name][()]] * 2)))
        if node.ndim >= 1 and shape[0] > 1:
            yield Mutation(f"{name} a row short", names,
                           lambda g: _replace(g, name, g[name][()][:-1]))
        if node.ndim == 0:
            yield Mutation(f"{name} an array for a scalar", names,
                           lambda g: _replace(g, name, np.full(3, g[name][()])))
    if kind == "f":
        yield Mutation(f"{name} integers", names,
                       lambda g: _replace(g, name, np.nan_to_num(g[name][()]).astype(np.int64)))
        if node.size > 0:
            for value in (np.nan, np.inf, -np.inf):
                yield Mutation(f"{name} holds {value}", names, _set_first(name, value))
        if node.ndim == 3 and shape[0] > 0 and shape[1] == shape[2] > 1:  # covariance blocks
            for how, what in BLOCK_SPOILINGS.items():
                yield Mutation(f"{name} {what}", names, _spoil_block(name, how))
        if parts[0] == "grains" and node.ndim == 1 and node.size > 0:
            for what, value in _impossible(parts[-1]):
                yield Mutation(f"{name} {what}", names, _negate_first(name) if value is None
                               else _set_first(name, value))
    if "units" in node.attrs:
        yield Mutation(f"{name} units furlong", names,
                       lambda g: g[name].attrs.__setitem__("units", "furlong"))
        yield Mutation(f"{name} units an integer", names,
                       lambda g: g[name].attrs.__setitem__("units", 7))


def _version(value: object) -> Callable[[h5py.Group], None]:
    return lambda g: g.attrs.__setitem__("mmt_result_version", value)


def _relabel(g: h5py.Group) -> None:
    _replace(g, "grain_cuboids/grain", g["grain_cuboids/grain"][()] + 100)


def _special_mutations(g: h5py.Group) -> Iterator[Mutation]:
    """Spoilings a walk over the entry's nodes does not make."""
    version = ("mmt_result_version",)
    # the entry's own version as a float is no damage (an entry of layout 1 or 2 has none: any
    # version given it says it is of another layout)
    own = (float(g.attrs["mmt_result_version"]),) if "mmt_result_version" in g.attrs else ()
    for value in ("three", "", -1, 0, 2**40, 2.5, np.array([RESULT_VERSION] * 2), *own):
        yield Mutation(f"version {value!r}", version, _version(value))
    yield Mutation("kind deleted", ("kind",), lambda g: g.attrs.__delitem__("kind"))
    yield Mutation("kind 'scan'", ("kind",), lambda g: g.attrs.__setitem__("kind", "scan"))
    if "grain_cuboids/grain" in g:
        yield Mutation("cuboid labels of other grains", ("grain_cuboids",), _relabel)
    if "results/scans" in g:
        yield Mutation("a scan listed without its group", ("ghost", "scans"),
                       lambda g: _replace(g, "results/scans",
                                          g["results/scans"].asstr()[()] + ",ghost"))
    for scan in g.get("scans", {}):
        yield Mutation(f"scans/{scan} deleted, still listed", (scan, "scans"),
                       lambda g, s=scan: g.__delitem__(f"scans/{s}"))
    first = g["results/scans"].asstr()[()].split(",")[0] if "results/scans" in g else ""
    if f"scans/{first}/fitted_Bz" in g:  # the first scan's maps, stored twice
        for name in ("fitted/Bz", "data/Bz"):
            yield Mutation(f"{name} unlike the first scan's", (name,), _unlike(name))


def _mutations(path: Path, entry: str) -> tuple[list[Mutation], list[Mutation]]:
    """The spoilings of the walk over the entry's nodes, and the special ones."""
    out: list[Mutation] = []
    with h5py.File(path, "r") as f:
        g = f[entry]

        def visit(name: str, node: object) -> None:
            if isinstance(node, h5py.Dataset):
                out.extend(_dataset_mutations(name, node))
            else:
                parts = tuple(name.split("/"))
                out.append(Mutation(f"group {name} deleted", (parts[-1], name),
                                    lambda g: g.__delitem__(name)))
        g.visititems(visit)
        return out, list(_special_mutations(g))


# what no reading may take as harmless: a value no result holds there (label patterns)
NOT_FINITE = re.compile(
    r"^(grains/(x|y|z|volume)|scans/\w+/(x|y|height|sensor_thickness|sensor_size)"
    r"|instrument/sensor/thickness|process/parameters/(height|damping)|results/coefficients"
    r"|grain_cuboids/\w+) holds (nan|inf|-inf)$")
INFINITE = re.compile(r"^(results/sigma|scans/\w+/sigma|fitted/Bz|scans/\w+/(fitted|residual)_Bz)"
                      r" holds (inf|-inf)$")
# a table's values (mx ... p-value) are finite in every result; SDs, covariances and the
# uncertainty ratio are +inf for an unresolved grain, some SDs and χ² NaN; none is -inf
COLUMN_VALUES = re.compile(
    r"^(grains/(mx|my|mz|moment|depth|ssr|declination|inclination|higher_order_p|[qo]\d\d[cs]?)"
    r" holds (nan|inf|-inf)|grains/(uncertainty_ratio|cov_\w+) holds (nan|-inf)"
    r"|grains/\w+ holds -inf)$")
# a covariance matrix holds finite values (symmetric, variances >= 0, correlations within ±1)
# or +inf throughout (an unresolved grain); cond(Q) >= 1 or +inf
COVARIANCE = re.compile(
    r"^(results/(coefficient_)?covariance (holds (nan|inf|-inf)|a negative variance|asymmetric"
    r"|a correlation of 2)|results/condition_number holds (nan|-inf)"
    r"|results/(covariance|condition_number) units (furlong|an integer))$")
# finite table values no result holds (`_impossible`), and the entry's own maps unlike the
# first scan's copies (`_unlike`)
OUT_OF_RANGE = re.compile(r"^grains/\w+ (negative|set to -?[\d.]+|of the wrong sign)$")
UNLIKE = re.compile(r"^(fitted|data)/Bz unlike the first scan's$")
HARMFUL = re.compile(
    rf"^(version (?!{re.escape(repr(WHOLE_FLOAT))}$).*|kind .*|cuboid labels of other grains"
    r"|a scan listed without its group|scans/\w+ deleted, still listed"
    r"|grains/\w+ (2-D for 1-D|a string)"
    r"|scans/\w+/mask (a row short|empty|3-D for 2-D)|data/Bz (a row short|empty)"
    r"|grains/\w+ (a row short|empty|units furlong)"
    r"|scans/\w+/(fitted|residual)_Bz (a row short|empty))$")


def _harmful(source: str, label: str) -> bool:
    """Whether the spoiling must be refused (else it may also be read: a field not needed)."""
    return bool(NOT_FINITE.match(label) or INFINITE.match(label) or HARMFUL.match(label)
                or COLUMN_VALUES.match(label) or COVARIANCE.match(label)
                or OUT_OF_RANGE.match(label) or UNLIKE.match(label)
                or (source == "joint" and label == "results/model deleted"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _judge(path: Path, entry: str, m: Mutation) -> tuple[str, str | None]:
    """('read' or 'refused', None) when handled, else what went wrong."""
    before = _digest(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            read_result_entry(path, entry)
        outcome, problem = "read", None
    except InputError as exc:
        msg = str(exc)
        missing = [w for w in (str(path), f"'{entry}'") if w not in msg]
        if not any(n in msg for n in m.names):
            missing.append(f"one of {m.names}")
        outcome = "refused"
        problem = f"message names not {missing}: {msg}" if missing else None
    except Exception as exc:  # what the fuzzing looks for
        tb = "".join(traceback.format_exception(exc)[-3:])
        return "crashed", f"{type(exc).__name__}: {exc} ... {tb}"
    if _digest(path) != before:
        problem = (problem + "; " if problem else "") + "the file changed"
    return outcome, problem


def test_a_damaged_result_entry_is_read_or_refused_by_name_and_left_as_it_was(
        sources: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED)
    counts: dict[str, int] = {}
    failures, read = [], []
    for source, (path, entry) in sources.items():
        walked, special = _mutations(path, entry)
        offered = walked + special  # those that must be refused each time, the others a sample
        must = [i for i, m in enumerate(offered) if _harmful(source, m.label)]
        columns = [i for i in must if offered[i].label.startswith("grains/")  # alike: a sample
                   and not OUT_OF_RANGE.match(offered[i].label)]
        rest = np.setdiff1d(np.arange(len(offered)), must)
        chosen = [*np.setdiff1d(must, columns), *rng.permutation(columns)[:COLUMNS],
                  *rng.permutation(rest)[:PER_SOURCE]]
        counts[f"{source} offered"] = len(offered)
        counts[f"{source} offered that must be refused"] = len(must)
        for i in sorted(chosen):
            m = offered[i]
            spoilt = tmp_path / f"{source}_{i}.h5"
            shutil.copy(path, spoilt)
            with h5py.File(spoilt, "a") as f:
                m.spoil(f[entry])
            outcome, problem = _judge(spoilt, entry, m)
            if outcome == "read" and _harmful(source, m.label):
                problem = "read, not refused"
            counts[f"{source} {outcome}"] = counts.get(f"{source} {outcome}", 0) + 1
            if problem is not None:
                failures.append(f"[{source}] {m.label}: {problem}")
            elif outcome == "read":
                read.append(f"[{source}] {m.label}")
            spoilt.unlink()
    print(counts)
    print("read as harmless:\n  " + "\n  ".join(read))
    assert not failures, f"{len(failures)}:\n" + "\n".join(failures)


def _command(argv: list[str], watched: Path, output: Path) -> tuple[object, str | None]:
    """(exit code, None) when `smm-daq` read the file (exit 0) or refused it with one message
    naming it (exit 2), with no traceback and the file unchanged; else what went wrong."""
    before = _digest(watched)
    out, err = io.StringIO(), io.StringIO()
    try:
        with redirect_stdout(out), redirect_stderr(err):
            code = main(argv)
    except SystemExit as stop:
        code = stop.code
    except Exception as exc:  # what the fuzzing looks for
        return "traceback", f"{type(exc).__name__}: {exc}"
    text = err.getvalue()
    errors = [ln for ln in text.splitlines() if "error:" in ln]
    problems = []
    if code not in (0, 2) or "Traceback" in text:
        problems.append(f"exit {code}")
    if code == 2 and (len(errors) != 1 or watched.name not in errors[0]
                      or "expected" not in errors[0]):
        problems.append("not one message naming the file and what was expected")
    if code == 2 and output.exists():
        problems.append(f"{output.name} written")
    if _digest(watched) != before:
        problems.append("the file changed")
    return code, f"{'; '.join(problems)}: {text.strip()[-300:]!r}" if problems else None


def test_info_and_export_read_or_refuse_a_damaged_result_entry(
        sources: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    rng = np.random.default_rng(SEED + 1)
    failures, codes = [], {}
    for source, (path, entry) in sources.items():
        walked, special = _mutations(path, entry)
        map_parts = [m for m in walked if m.label.startswith(("data/", "instrument/"))]
        chosen = [map_parts[i] for i in rng.permutation(len(map_parts))[:3]]
        chosen += [special[i] for i in rng.permutation(len(special))[:1]]
        for j, m in enumerate(chosen):
            spoilt = tmp_path / f"{source}_{j}.h5"
            shutil.copy(path, spoilt)
            with h5py.File(spoilt, "a") as f:
                m.spoil(f[entry])
            csv_out = tmp_path / f"{source}_{j}.csv"
            for command, argv in (("info", ["info", str(spoilt)]),
                                  ("export", ["export", str(spoilt), "--entry", entry,
                                              "--csv", str(csv_out)])):
                code, problem = _command(argv, spoilt, csv_out)
                codes[f"{command} exit {code}"] = codes.get(f"{command} exit {code}", 0) + 1
                if problem is not None:
                    failures.append(f"[{source}] {m.label} / {command}: {problem}")
    print(codes)
    assert not failures, f"{len(failures)}:\n" + "\n".join(failures)


def test_a_result_with_unresolved_grains_reads_back(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """What the writer stores of grains the data cannot tell apart (+inf covariances, SDs and
    uncertainty ratios, NaN direction SDs) is what the reader takes, not damage; `info` lists
    the result with its unresolved grains."""
    shape = synth.random_grain(np.random.default_rng(2), 3 * UM)
    at = np.array([[10, 10, -4], [10, 10, -4], [20, 15, -6]]) * UM  # 1 and 2 one body
    labels = np.repeat([1, 2, 3], shape.shape[0])
    sample = synth.SyntheticSample(
        from_arrays(np.concatenate([shape + np.r_[a, 0, 0, 0] for a in at]), labels),
        np.array([[1e4, 0, 0], [0, 1e4, 0], [0, 0, 2e4]]), (30 * UM, 30 * UM), 10 * UM)
    data = synth.scan(sample, height=1 * UM, step=1 * UM, sensor_size=(0, 0), noise=5e-9,
                      rng=np.random.default_rng(1))
    with pytest.warns(SingularWarning):
        result = invert_map(data, sample.grains, height=1 * UM, sensor_size=(0.0, 0.0),
                            sigma=5e-9)
    path = tmp_path / "u.h5"
    write_map_entry(path, data.with_bz(data.bz, name="scan"), kind="scan")
    table = result.table()
    write_result_entry(path, "u", "scan", result, table, {"command": "test"})
    saved = read_result_entry(path, "u")
    assert np.isinf(saved.covariance[:2]).all() and np.isfinite(saved.covariance[2]).all()
    assert np.isinf(saved.table["sd_mx_A_per_m"][:2]).all()
    assert not np.all(np.isfinite(saved.table["sd_declination_deg"]))  # what it holds
    capsys.readouterr()
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "  u  [mmt, finished]" in out and "3 grains (cuboid, 2 unresolved), σ 5 nT" in out, out


def _spoilt_copy(path: Path, entry: str, m: Mutation, out: Path) -> Path:
    shutil.copy(path, out)
    with h5py.File(out, "a") as f:
        m.spoil(f[entry])
    return out


@pytest.mark.parametrize(("source", "label", "words"), [
    ("cuboid", "results/condition_number holds nan", "'condition_number' is nan"),
    ("v2", "results/covariance a negative variance", "a negative variance in grain"),
    ("cuboid", "results/covariance asymmetric", "an asymmetry beyond rounding in grain"),
    ("cuboid", "results/covariance a correlation of 2", "a correlation beyond ±1 in grain"),
    ("cuboid", "results/covariance holds inf", "inf (not throughout) in grain"),
    ("joint", "results/coefficient_covariance a negative variance", "a negative variance"),
    ("joint", "results/coefficient_covariance asymmetric", "an asymmetry beyond rounding"),
    ("joint", "results/coefficient_covariance holds inf", "inf (not throughout)"),
])
def test_a_covariance_or_condition_number_no_solver_writes_is_refused_by_name(
        sources: dict[str, tuple[Path, str]], tmp_path: Path, source: str, label: str,
        words: str) -> None:
    """The generator offers the spoiling, and the reader refuses it naming file, entry and the
    field: cond(Q) NaN (every solver records one), a covariance block with a negative
    variance, asymmetric, with a correlation beyond ±1, or +inf in part of it (an unresolved
    grain's is +inf throughout)."""
    path, entry = sources[source]
    walked, _special = _mutations(path, entry)
    m = next(m for m in walked if m.label == label)
    assert _harmful(source, label)  # the fuzz test runs it each time
    spoilt = _spoilt_copy(path, entry, m, tmp_path / "s.h5")
    with pytest.raises(InputError) as refused:
        read_result_entry(spoilt, entry)
    said = str(refused.value)
    assert str(spoilt) in said and f"entry '{entry}'" in said and words in said, said
    assert f"'{label.split()[0].split('/')[-1]}'" in said and "expected" in said


def test_the_layout_version_written_as_a_whole_float_reads_as_written(
        sources: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """The one version the fuzz offers as no damage is the version the results are written
    in, as a float: it reads, the same result; the others offered must be refused."""
    offered = [m.label for m in _special_mutations_of(*sources["cuboid"])
               if m.label.startswith("version ")]
    assert [label for label in offered if not _harmful("cuboid", label)] == [
        f"version {float(RESULT_VERSION)!r}"]
    for source in ("cuboid", "joint"):
        path, entry = sources[source]
        spoilt = _spoilt_copy(path, entry, Mutation("float", (), _version(WHOLE_FLOAT)),
                              tmp_path / f"{source}.h5")
        saved, written = read_result_entry(spoilt, entry), read_result_entry(path, entry)
        assert saved.table.keys() == written.table.keys()
        for key, values in written.table.items():
            np.testing.assert_array_equal(saved.table[key], values)


def _special_mutations_of(path: Path, entry: str) -> list[Mutation]:
    with h5py.File(path, "r") as f:
        return list(_special_mutations(f[entry]))


def test_covariance_blocks_asymmetric_by_rounding_read(
        sources: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """A block asymmetric by 1e-9 of sqrt(C_ii C_jj) (more than W Wᵀ's rounding, ~n·ε, on any
    device) is still a covariance matrix: read, as written."""
    for source, name in (("cuboid", "results/covariance"),
                         ("joint", "results/coefficient_covariance")):
        path, entry = sources[source]
        m = Mutation("rounding", (), _spoil_block(name, "asymmetric", by=1e-9))
        spoilt = _spoilt_copy(path, entry, m, tmp_path / f"{source}.h5")
        saved = read_result_entry(spoilt, entry)
        held = saved.covariance if name.endswith("/covariance") \
            else saved.coefficient_covariance
        assert held is not None and held[0, 0, 1] != held[0, 1, 0]


RANGE_CASES = [
    ("cuboid", "grains/mx_errors negative", "sd_mx_A_per_m", "standard deviations >= 0"),
    ("joint", "grains/declination_errors negative", "sd_declination_deg",
     "standard deviations >= 0"),
    ("joint", "grains/q20_errors negative", "sd_q20_Am3", "standard deviations >= 0"),
    ("cuboid", "grains/uncertainty_ratio negative", "uncertainty_ratio_pct", "ratios >= 0 %"),
    ("v2", "grains/moment negative", "moment_Am2", "moments |M|V >= 0"),
    ("cuboid", "grains/ssr negative", "ssr_per_um", "signal strength ratios >= 0"),
    ("joint", "grains/higher_order_chi2 negative", "higher_order_chi2", "χ² values >= 0"),
    ("joint", "grains/higher_order_p set to 1.5", "higher_order_p", "p-values from 0 to 1"),
    ("joint", "grains/higher_order_p set to -0.5", "higher_order_p", "p-values from 0 to 1"),
    ("joint", "grains/higher_order_resolved set to 0.5", "higher_order_resolved", "0 or 1"),
    ("joint", "grains/higher_order_resolved set to 2", "higher_order_resolved", "0 or 1"),
    ("cuboid", "grains/declination set to 360.5", "declination_deg", "from 0 to 360°"),
    ("v2", "grains/declination set to -0.5", "declination_deg", "from 0 to 360°"),
    ("cuboid", "grains/inclination set to 90.5", "inclination_deg", "from -90 to 90°"),
    ("joint", "grains/inclination set to -90.5", "inclination_deg", "from -90 to 90°"),
    ("cuboid", "grains/depth of the wrong sign", "depth_um",
     "expected the depth below the sample top, -z_um"),
]


@pytest.mark.parametrize(("source", "label", "column", "words"), RANGE_CASES)
def test_a_table_value_out_of_its_columns_range_is_refused_naming_column_and_grain(
        sources: dict[str, tuple[Path, str]], tmp_path: Path, source: str, label: str,
        column: str, words: str) -> None:
    """The generator offers the spoiling (run each time), and the reader refuses the finite
    value no result holds there, naming file, entry, the column (as the CSV names it) and
    the first grain's label."""
    path, entry = sources[source]
    walked, _special = _mutations(path, entry)
    m = next(m for m in walked if m.label == label)
    assert _harmful(source, label) and OUT_OF_RANGE.match(label)
    first = int(read_result_entry(path, entry).table["grain"][0])
    spoilt = _spoilt_copy(path, entry, m, tmp_path / "s.h5")
    with pytest.raises(InputError) as refused:
        read_result_entry(spoilt, entry)
    said = str(refused.value)
    assert str(spoilt) in said and f"entry '{entry}'" in said and f"'{column}'" in said, said
    assert f"for grain {first}" in said and words in said and "expected" in said, said


@pytest.mark.parametrize("label", ["fitted/Bz unlike the first scan's",
                                   "data/Bz unlike the first scan's"])
def test_the_entrys_map_unlike_the_first_scans_copy_is_refused_naming_both(
        sources: dict[str, tuple[Path, str]], tmp_path: Path, label: str) -> None:
    """`fitted/Bz` and `data/Bz` hold the first scan's fitted and residual maps, which
    `scans/<first>/` holds too: a pixel differing in one of them is damage."""
    path, entry = sources["joint"]
    _walked, special = _mutations(path, entry)
    m = next(m for m in special if m.label == label)
    assert _harmful("joint", label)
    saved = read_result_entry(path, entry)
    spoilt = _spoilt_copy(path, entry, m, tmp_path / "s.h5")
    with pytest.raises(InputError) as refused:
        read_result_entry(spoilt, entry)
    said = str(refused.value)
    copy = f"scans/{saved.scans[0]}/{'fitted' if label.startswith('fitted') else 'residual'}_Bz"
    assert str(spoilt) in said and f"entry '{entry}'" in said, said
    assert f"'{label.split()[0]}'" in said and f"'{copy}'" in said \
        and "expected the same map" in said, said


def test_table_values_at_their_ranges_ends_and_a_first_scan_in_other_units_read(
        sources: dict[str, tuple[Path, str]], tmp_path: Path) -> None:
    """What a writer can make at the ends of each range reads: declination 360 (a tiny
    negative angle mod 360) and 0, inclination ±90, p 1 (unresolved) and 0, resolved 0 and 1,
    SDs, moment, ratio and χ² 0, a point grain above the sample top (depth -z < 0) (each with
    the values that agree with it: M of those directions, a variance 0, the SSR of the
    centroid moved); and the
    first scan's copy of the fitted map stored in nT, equal once converted."""
    path, entry = sources["joint"]
    spoilt = tmp_path / "s.h5"
    shutil.copy(path, spoilt)
    first = read_result_entry(path, entry).scans[0]
    ends = {"declination": (360.0, 0.0), "inclination": (90.0, -90.0),
            "higher_order_p": (1.0, 0.0), "higher_order_resolved": (0.0, 1.0),
            "mx_errors": (0.0, 0.0), "moment": (0.0, 0.0), "uncertainty_ratio": (0.0, 0.0),
            "higher_order_chi2": (0.0, 0.0), "z": (0.5, -4.0), "depth": (-0.5, 4.0),
            "mx": (-1e-300, 1e-300), "my": (1e-150, 1e-150), "mz": (-1.0, 1.0)}
    with h5py.File(spoilt, "a") as f:
        g = f[entry]
        for stem, (a, b) in ends.items():
            data = np.array(g[f"grains/{stem}"][()], dtype=float)
            data[:2] = a, b
            _replace(g, f"grains/{stem}", data)
        # what else agrees with those (as a writer would store them): M in the coefficients
        # (the directions are its), mx's variance and covariances 0 in every copy, the SSR
        # of the centroids moved
        coefficients = np.array(g["results/coefficients"][()], dtype=float)
        coefficients[:2, :3] = [[-1e-300, 1e-150, -1.0], [1e-300, 1e-150, 1.0]]
        _replace(g, "results/coefficients", coefficients)
        for name in ("results/covariance", "results/coefficient_covariance"):
            blocks = np.array(g[name][()], dtype=float)
            blocks[:2, 0, :] = blocks[:2, :, 0] = 0.0
            _replace(g, name, blocks)
        for stem in ("cov_xy", "cov_xz"):
            _replace(g, f"grains/{stem}", np.r_[0.0, 0.0, g[f"grains/{stem}"][2:]])
        volume = g["grains/volume"][()]
        distance = g["process/parameters/height"][()] / UM - g["grains/z"][()]
        _replace(g, "grains/ssr", volume / (distance**3 * np.cbrt(6 * volume / math.pi)))
        fitted = g[f"scans/{first}/fitted_Bz"]
        assert fitted.attrs["units"] == "T"
        _replace(g, f"scans/{first}/fitted_Bz", fitted[()] * 1e9)
        g[f"scans/{first}/fitted_Bz"].attrs["units"] = "nT"
    saved = read_result_entry(spoilt, entry)
    assert saved.table["declination_deg"][0] == 360.0 and saved.table["depth_um"][0] == -0.5
    np.testing.assert_allclose(saved.scan_fits[0].fitted.bz, saved.fitted.bz, rtol=1e-9)
