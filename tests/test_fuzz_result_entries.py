"""Fuzzing saved MMT result entries: from three small real results (a cuboid result, a joint
quadrupole result of two scans with a mask, and the cuboid one as written before layout
version 3), one thing at a time is spoiled with a seeded generator: a dataset, group or
attribute deleted, a string for a number, integers for floats, a row short, 2-D for 1-D, NaN
and inf, an empty array, a covariance block with a negative variance, asymmetric or with a
correlation of 2, a version attribute that is no whole number, negative or huge, a cuboid
table of other labels, a scan listed without its group. `read_result_entry` must read
each (where the damage is harmless) or refuse it with an InputError naming the file, the
entry and the field, never another exception, and leave the file's bytes as they were; a
value no result holds there (`_harmful`) must be refused, not read. Those are all run (of the
grain table's alike columns a sample), of the others a seeded sample. A few spoiled files
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
from smm_daq.analysis.mmt.result_file import write_result_entry
from smm_daq.analysis.mmt.result_read import read_result_entry
from smm_daq.analysis.mmt.solver.inversion import SingularWarning, invert_map
from smm_daq.cli.main import main
from smm_daq.errors import InputError
from smm_daq.storage.nexus import write_map_entry

UM = 1e-6
SEED = 20261206
PER_SOURCE = 40  # harmless-or-not mutations drawn per source result (of those it offers)
COLUMNS = 25  # spoilt grain-table columns drawn per source (each must be refused)


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
    for value in ("three", "", -1, 0, 2**40, 2.5, np.array([3, 3]), 3.0):
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
HARMFUL = re.compile(
    r"^(version (?!3\.0$).*|kind .*|cuboid labels of other grains|a scan listed without "
    r"its group|scans/\w+ deleted, still listed|grains/\w+ (2-D for 1-D|a string)"
    r"|scans/\w+/mask (a row short|empty|3-D for 2-D)|data/Bz (a row short|empty)"
    r"|grains/\w+ (a row short|empty|units furlong)"
    r"|scans/\w+/(fitted|residual)_Bz (a row short|empty))$")


def _harmful(source: str, label: str) -> bool:
    """Whether the spoiling must be refused (else it may also be read: a field not needed)."""
    return bool(NOT_FINITE.match(label) or INFINITE.match(label) or HARMFUL.match(label)
                or COLUMN_VALUES.match(label) or COVARIANCE.match(label)
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
        columns = [i for i in must if offered[i].label.startswith("grains/")]  # alike: a sample
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
