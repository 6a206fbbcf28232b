"""numba's cache of a kernel goes stale when a module it compiles in changes, not only its own
file: an edit or a pull that changed only a callee module left the old code running."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import smm_daq

CALLEE = '''
import math

from numba import njit

SCALE = math.sqrt(10.0)


@njit(cache=True, inline="always")
def value(x):
    return SCALE * x
'''

CALLER = '''
from numba import njit

import smm_cache_callee as callee
from smm_daq.analysis.mmt.models.compiled import cache_depends_on


@njit(cache=True)
def kernel(x):
    return callee.value(x) + 1.0


cache_depends_on(__name__, "smm_cache_callee")
'''

RUN = '''
import smm_cache_caller as caller
print(caller.kernel(2.0), caller.kernel.stats.cache_hits.total(),
      caller.kernel.stats.cache_misses.total())
'''


def _python(code: str, path: Path) -> list[str]:
    """Runs `code` in a new interpreter (as a researcher's next session) importing from
    `path` first, numba caching beside the sources."""
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = os.pathsep.join([str(path), str(Path(smm_daq.__file__).parents[1])])
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=300, cwd=path)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_a_changed_callee_module_recompiles_its_caller_and_an_unchanged_one_does_not(
        tmp_path: Path) -> None:
    (tmp_path / "smm_cache_callee.py").write_text(CALLEE)
    (tmp_path / "smm_cache_caller.py").write_text(CALLER)
    result, hits, misses = _python(RUN, tmp_path)
    assert float(result) == pytest.approx(2 * 10 ** 0.5 + 1) and (hits, misses) == ("0", "1")
    result, hits, misses = _python(RUN, tmp_path)  # nothing changed: the cache serves it
    assert float(result) == pytest.approx(2 * 10 ** 0.5 + 1) and (hits, misses) == ("1", "0")
    (tmp_path / "smm_cache_callee.py").write_text(CALLEE.replace("10.0", "12.0"))
    result, hits, misses = _python(RUN, tmp_path)
    assert float(result) == pytest.approx(2 * 12 ** 0.5 + 1)
    assert (hits, misses) == ("0", "1")


STAMPS = '''
from smm_daq.analysis.mmt.models import cuboid, cuboid_gpu, multipole
for kernel in (multipole._block_point, cuboid._green_block, cuboid_gpu._green_kernel):
    print(repr(kernel._cache._cache_file._source_stamp))
'''


@pytest.fixture(scope="module")
def package_stamps(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A copy of the package and the stamps of its kernels' caches, read twice (in two new
    interpreters) to see that an unchanged tree keeps them. Each test edits a copy of its
    own: numba's stamp and `cache_depends_on`'s are hashes of the sources' bytes, alike in
    each copy (copytree keeps the files' times too), not of a path; an unchanged kernel's
    stamp is checked equal to these in each test all the same."""
    root = tmp_path_factory.mktemp("stamps")
    shutil.copytree(Path(smm_daq.__file__).parent, root / "smm_daq",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = _stamp_lines(root)
    assert before == _stamp_lines(root)
    return root / "smm_daq", before


@pytest.mark.parametrize("callee, stale", [
    ("analysis/mmt/models/multipole_kernels.py", (True, False, False)),
    ("analysis/forward.py", (False, True, True)),
    ("analysis/mmt/models/expansion_terms.py", (False, True, True)),
    ("analysis/mmt/models/cuboid.py", (False, True, True)),  # the CUDA kernels inline it
])
def test_the_model_kernels_are_stale_once_a_module_they_compile_in_changes(
        tmp_path: Path, package_stamps: tuple[Path, list[str]], callee: str,
        stale: tuple[bool, ...]) -> None:
    """In a copy of the package, an edit of only the callee changes the stamp numba checks
    the caller's cache against (as an edit of the caller's own file does); nothing else's.
    The CUDA kernels' cache is stamped as the CPU kernels' (no GPU needed to tell)."""
    source, before = package_stamps
    package = tmp_path / "smm_daq"
    shutil.copytree(source, package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / callee, "a") as f:
        f.write("\n# a pulled edit\n")
    after = _stamp_lines(tmp_path)
    assert tuple(b != a for b, a in zip(before, after, strict=True)) == stale


def _stamp_lines(path: Path) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["PYTHONPATH"] = str(path)
    done = subprocess.run([sys.executable, "-c", STAMPS], env=env, capture_output=True,
                          text=True, timeout=300, cwd=path)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_a_numba_that_keeps_its_stamp_elsewhere_gets_no_cache_rather_than_a_stale_one(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from numba import njit

    from smm_daq.analysis.mmt.models import compiled

    def twice(x):
        return 2 * x

    module = types.ModuleType("smm_moved_stamp")
    twice.__module__ = module.__name__  # defined there, as a kernel module's own are
    module.kernel = njit(cache=True)(twice)
    module.plain = twice  # not a kernel: left alone
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.delattr(module.kernel._cache._cache_file, "_source_stamp")
    compiled.cache_depends_on(module.__name__, "smm_daq.analysis.forward")
    assert not module.kernel._cache._enabled
    assert module.kernel(2.0) == 4.0


# what the kernel modules import from smm_daq for their Python side only (never compiled in)
PYTHON_SIDE = {"smm_daq.errors", "smm_daq.text_files", "smm_daq.analysis.grains",
               "smm_daq.analysis.mmt.models.compiled", "smm_daq.analysis.mmt.models.cuda_compat",
               "smm_daq.whole_files", "smm_daq.analysis.mmt.models.polynomials"}


def test_every_module_a_cached_kernel_module_imports_is_among_its_dependencies() -> None:
    """A module that caches kernels and imports from another smm_daq module names it in
    `cache_depends_on` (or it is one that only its Python side uses): a new import cannot
    bring the stale cache back unseen."""
    import ast

    root = Path(smm_daq.__file__).parent
    checked = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        if "cache=True" not in source:
            continue
        tree = ast.parse(source)
        imported = {_module_of(node.module, alias.name, root) for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.level == 0
                    and (node.module or "").startswith("smm_daq") for alias in node.names}
        declared = {arg.value for node in ast.walk(tree)
                    if isinstance(node, ast.Call)
                    and getattr(node.func, "id", None) == "cache_depends_on"
                    for arg in node.args[1:] if isinstance(arg, ast.Constant)}
        missing = imported - PYTHON_SIDE - declared
        assert not missing, f"{path.relative_to(root)} compiles in {missing} undeclared"
        checked.append(path.name)
    assert {"cuboid.py", "multipole.py", "cuboid_gpu.py"} <= set(checked)


def _module_of(module: str, name: str, root: Path) -> str:
    """The module `from module import name` reads: `module.name` where that is a module."""
    candidate = f"{module}.{name}"
    path = root.parent / candidate.replace(".", "/")
    return candidate if path.with_suffix(".py").exists() or path.is_dir() else module


OCTUPOLE_BLOCK = '''
import numpy as np
from smm_daq.analysis.mmt.models import multipole
from smm_daq.analysis.mmt.models.multipole import MultipoleModel, Sensor, point_grains
um = 1e-6
grains = point_grains(np.array([[0.0, 0.0, -5 * um]]), np.array([1e-18]))
model = MultipoleModel.build(grains, Sensor.from_size((0.0, 0.0)), "octupole")
sensors = np.array([[2 * um, 1 * um, 1 * um]])
out = np.zeros((1, model.n_columns), order="F")
model.block(sensors, out)
print(",".join(map(repr, out.ravel().tolist())), multipole._block_point.stats.cache_hits.total())
'''


def test_an_edited_generated_kernel_module_changes_the_multipole_model_s_results(
        tmp_path: Path) -> None:
    """The case found: the generated multipole_kernels.py edited alone (a constant of the
    octupole terms), the cached `_block_point` that inlines it went on with the old one.
    The copy takes the package's caches along (compiled bytecode, and numba's kernels where
    an earlier test ran them): the first run may then read `_block_point` from its cache
    rather than compile it, as it reads the same sources; the run after the edit must
    compile it."""
    shutil.copytree(Path(smm_daq.__file__).parent, tmp_path / "smm_daq")
    before, hits = _python(OCTUPOLE_BLOCK, tmp_path)
    if hits != "1":  # compiled (no cache came along): unchanged, the next run reads it
        assert _python(OCTUPOLE_BLOCK, tmp_path) == [before, "1"]
    kernels = tmp_path / "smm_daq/analysis/mmt/models/multipole_kernels.py"
    kernels.write_text(kernels.read_text().replace("math.sqrt(10)", "math.sqrt(12)"))
    after, hits = _python(OCTUPOLE_BLOCK, tmp_path)
    assert after != before and hits == "0"


def test_a_kernel_a_module_only_imports_keeps_the_stamp_of_the_module_defining_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """`cuboid.py` imports `forward.py`'s `_cuboid_constants`: stamping it there made its cache
    depend on whether a process had imported `cuboid.py` (see the next test for what then
    broke). The importing module's own kernels are stamped as before."""
    import types

    from numba import njit

    from smm_daq.analysis.mmt.models import compiled

    def twice(x):
        return 2 * x

    def thrice(x):
        return 3 * x

    home = types.ModuleType("smm_kernel_home")
    twice.__module__ = home.__name__  # defined in `home`
    home.kernel = njit(cache=True)(twice)
    user = types.ModuleType("smm_kernel_user")
    thrice.__module__ = user.__name__  # defined in `user`
    user.own = njit(cache=True)(thrice)
    user.kernel = home.kernel  # `from smm_kernel_home import kernel`
    for module in (home, user):
        monkeypatch.setitem(sys.modules, module.__name__, module)
    home_stamp = home.kernel._cache._cache_file._source_stamp
    own_stamp = user.own._cache._cache_file._source_stamp
    compiled.cache_depends_on(user.__name__, "smm_daq.analysis.forward")
    assert home.kernel._cache._cache_file._source_stamp == home_stamp
    assert user.own._cache._cache_file._source_stamp != own_stamp


def test_the_model_modules_leave_the_stamps_of_the_kernels_they_import_alone() -> None:
    """Every cached kernel of forward.py and cuboid.py is stamped once, by its own module,
    whichever model modules (cuboid_gpu.py imports cuboid.py's helpers) are imported."""
    from smm_daq.analysis import forward
    from smm_daq.analysis.mmt.models import cuboid, cuboid_gpu, multipole, multipole_kernels

    assert cuboid_gpu and multipole  # imported for their `cache_depends_on`
    for module, stamped in ((forward, False), (multipole_kernels, False), (cuboid, True)):
        kernels = [k for k in vars(module).values()
                   if hasattr(getattr(getattr(k, "_cache", None), "_cache_file", None),
                              "_source_stamp") and k.py_func.__module__ == module.__name__]
        assert kernels
        for kernel in kernels:
            own = kernel._cache._impl.locator.get_source_stamp()
            stamp = kernel._cache._cache_file._source_stamp
            assert (stamp[0] == own and stamp[1] != own) if stamped else stamp == own, \
                kernel.py_func.__qualname__


LIBRARY = '''
import numpy as np
from numba import njit


@njit(cache=True)
def constants(n):
    return np.ones(n), np.zeros(n)  # arrays boxed with a dtype from the build's environment


@njit(cache=True)
def caller(n):
    a, b = constants(n)  # the cached caller holds the build of `constants` it was made with
    return a.sum() + b.sum()
'''

IMPORTER = '''
from smm_cache_library import constants
from smm_daq.analysis.mmt.models.compiled import cache_depends_on

cache_depends_on(__name__, "smm_cache_library")
'''

FILL = '''
import smm_cache_library as library
print(library.caller(3), next(iter(library.constants.overloads.values())).fndesc.uid)
'''

# numba names a build `<qualname>$<uid>`, the uid from a counter that starts again in each
# process: set here to the uid of the cached build, as it came out by chance in the demo
# (five builds before it in both processes), so a fresh build takes that build's name
USE = '''
import itertools
from numba.core.bytecode import FunctionIdentity
import smm_cache_library as library
print(library.caller(3))  # as the simulator's field, from the cache, before the MMT
import smm_cache_importer
FunctionIdentity._unique_ids = itertools.count({uid})
a, b = library.constants(3)  # as CuboidModel.build calls _cuboid_constants
print(a.sum() + b.sum())
'''


def test_importing_a_kernel_does_not_make_the_next_process_fail_to_box_its_result(
        tmp_path: Path) -> None:
    """The demo's `SystemError: CPUDispatcher(_cuboid_constants) returned a result with an
    exception set`, run after run: a process that had not imported the importing module
    cached the kernel; one that had compiled it afresh under the name of the build the cached
    caller holds (the first process's), and every process after that failed to box its
    result (`RuntimeError: 'descr' is NULL`). Each process here loads the caller first."""
    (tmp_path / "smm_cache_library.py").write_text(LIBRARY)
    (tmp_path / "smm_cache_importer.py").write_text(IMPORTER)
    total, uid = _python(FILL, tmp_path)
    assert float(total) == 3.0
    assert _python(USE.format(uid=uid), tmp_path) == ["3.0", "3.0"]
    assert _python(USE.format(uid=uid), tmp_path) == ["3.0", "3.0"]
