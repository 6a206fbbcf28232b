"""How often each candidate rule calls a registration's shift significant when there is no
shift at all (its false-positive rate; 5 % is what a 95 % test promises), and how often it
finds a true shift of a given length (its power), on realistic maps; it prints figures,
asserts nothing.

    .venv/bin/python benchmarks/registration_significance.py [--seeds 1,2,3,4,5] [--maps 120]
                                                            [--power 0.5,1] [--kinds K1;K2]

The maps are those of tests/test_registration_coverage.py (the outside reviewer's): 21 × 11
pixels of 20 × 30 µm, 100 µm above point grains (random remanence, log-normal strength),
0.25 µT of noise in each scan, the in-field scan with 3 µT of applied field and, where
asked, each grain's induced moment along +x; a true shift drawn within half a pixel, the
error of the shift found judged (as a shift at zero would be, had the scans none). The
kinds: maps differing by noise only (4 and 8 grains), and by an induced field too (4 grains
at 0.2 of the remanent moment, 8 at 0.5 and 8 at 1.5, where the residual is several times
the noise). --kinds runs some of them (two processes, each a few kinds, share two cores).
Then, for power, maps of each kind with a true shift of each --power length (in pixels,
along a random direction), the shift found judged. Each map is registered once; its two
covariance estimates (sandwich S, jackknife J) and the misfit factor f
(`registration._misfit_factor`) are kept and every rule is judged on the same fits, the
first seven on f S and f J, as `estimate_registration` scales them (a registration that
determines no shift, its fit at the search's bound, is counted as not significant, and said):
- sd-only: the larger SD of each axis, no correlation;
- mixture: those SDs with the correlation of whichever estimate has the larger 95 % region;
- bound-max: the least covariance above both S and J along every direction (S^½ U max(Λ, 1)
  Uᵀ S^½, J = S^½ U Λ Uᵀ S^½);
- bound-sum: S + J;
- agreed: the larger SDs, with a correlation only where both estimates have one of the same
  sign (the smaller in size), else none;
- sd-and-mixture: significant only by both sd-only and mixture (outside both 95 % regions:
  `shift_is_significant` on the larger of the two estimates, the rule before the sum);
- sum-both: outside both 95 % regions of S + J (`shift_is_significant` on the registration's
  covariance, which is their sum: `registration._covariance`);
- sum-unscaled, sum-S-scaled, sum-J-scaled: sum-both on S + J with f on neither, on S alone
  or on J alone (whether scaling both counts the misfit twice: S's middle term is the
  residual's own autocovariance and J an empirical spread, each growing with the misfit).
Prints, per kind and rule, the shifts called significant over all seeds (and the range over
seeds), and the binomial SD of a 5 % rate over as many maps.

Before, with S windowed over lags up to a quarter of the map and neither scaled, seeds 1-5,
600 maps a kind, per cent of shifts at zero called significant:

    kind                    sd-only mixture bound-max bound-sum agreed sd-and-mixture
    noise only, 4 grains      8.8    11.2     10.7       5.5     9.5        8.2
    noise only, 8 grains      2.5     3.5      2.5       0.3     2.7        1.8
    induced 0.2, 4 grains    18.5    24.5     22.5      12.0    20.0       17.3
    induced 0.5, 8 grains    27.7    33.8     31.2      20.2    29.0       26.5

Where the maps differ by an induced field the SDs fell short of the error: the residual is
then smooth, and the shift absorbs, unseen, the part of the induced field shaped like one.
Now, S over lags up to the whole map and both scaled by the misfit, seeds 1-2, 240 maps a kind
(± 1.4 % at 5 %; 23 minutes on one of 2 busy shared cores), per cent significant:

    shift at zero           sd-only mixture bound-max bound-sum agreed sd-and-mixture sum-both
    noise only, 4 grains      7.9    11.7     10.0       5.8     9.6        7.5        4.2
    noise only, 8 grains      2.1     4.2      2.5       0.4     2.1        2.1        0.4
    induced 0.2, 4 grains    16.7    20.8     19.2       9.2    18.3       15.8        7.1
    induced 0.5, 8 grains    11.7    12.5     12.5       8.8    11.7       10.8        7.9
    a shift of 0.5 pixel
    noise only, 4 grains     70.8    77.9     76.2      64.2    74.2       69.2       59.6
    noise only, 8 grains     90.4    94.2     93.3      90.4    92.1       90.4       85.8
    induced 0.2, 4 grains    62.9    70.4     68.3      59.2    66.2       62.5       52.9
    induced 0.5, 8 grains    57.1    59.2     57.1      45.4    57.9       55.0       41.2
    a shift of 1 pixel
    noise only, 4 grains     86.7    90.0     89.6      85.4    89.2       86.2       81.2
    noise only, 8 grains     97.5    99.2     98.8      98.3    98.3       97.5       96.7
    induced 0.2, 4 grains    80.0    85.8     83.8      78.8    82.9       79.6       72.1
    induced 0.5, 8 grains    75.0    76.7     75.4      70.0    74.6       74.6       66.7

The window and the scaling brought the larger of the two estimates (sd-and-mixture) from
26.5 to 10.8 % on maps of 8 grains differing by an induced field of half their remanence,
but not on those of 4 grains (17.3 to 15.8 %), where a grain's field spans several of the
jackknife's blocks. The sum (sum-both, now `shift_is_significant`'s) comes closest to 5 % on
both (7.1 and 7.9 %) and lowers it on the kinds differing by noise only (4.2 and 0.4 %), at
a cost in power: a shift of half a pixel found 5 to 14 points less often, one of a pixel
1 to 8 points. Every rule that counts the correlation alone (mixture, bound-max, agreed) calls
more than the SDs alone. Outside both 95 % regions, a rule never calls more than by its SDs
alone, map by map; with a known covariance it calls at most 5 % (2.89 % at a correlation
of ±0.9).

Is the misfit counted twice? With the whole-pixel search bounded at a quarter of the map,
seed 1, 100 maps a kind (± 2.2 % at 5 %), and seeds 1-2, 200 maps (± 1.5 %), for the two
kinds of 8 grains differing by an induced field (9 minutes on two busy shared cores), per
cent significant:

    shift at zero           sum-both sum-unscaled sum-S-scaled sum-J-scaled
    noise only, 4 grains       5.0        5.0          5.0          5.0
    noise only, 8 grains       0.0        0.0          0.0          0.0
    induced 0.2, 4 grains      8.0        9.0          9.0          8.0
    induced 0.5, 8 grains      8.0       12.0          9.0          9.0
    induced 1.5, 8 grains      1.5       20.0          6.5          6.5
    a shift of 0.5 pixel
    noise only, 4 grains      54.0       55.0         55.0         55.0
    noise only, 8 grains      85.0       89.0         86.0         86.0
    induced 0.2, 4 grains     52.0       53.0         53.0         53.0
    induced 0.5, 8 grains     37.5       57.0         46.5         44.5
    induced 1.5, 8 grains      4.0       31.5          9.5         11.5
    a shift of 1 pixel
    noise only, 4 grains      79.0       79.0         79.0         79.0
    noise only, 8 grains      97.0       97.0         97.0         97.0
    induced 0.2, 4 grains     69.0       70.0         69.0         69.0
    induced 0.5, 8 grains     64.5       79.5         71.0         69.5
    induced 1.5, 8 grains     13.0       52.5         20.0         20.0

On maps alike but for noise f is about 1 and the rules agree. Unscaled, the SDs fall short
where the residual is several times the noise (a shift at zero called significant 20 % of
the time at 1.5). Scaling one estimate only finds 5.5 to 9 points more true shifts of half
a pixel or a pixel at 0.5 and 1.5, but calls 5 points more shifts at zero at 1.5 (10 more of
the same 200 maps, beyond the binomial error), about what it gains there in power: it calls
more shifts of every kind rather than telling them apart better. So both estimates stay
scaled (`registration._misfit_factor`). Where the residual is several times the noise a
shift of a pixel is found at most one time in five by any rule that keeps shifts at zero
near 5 %: it is that poorly determined, and is left out and said so. 8 of the 600
registrations of that kind failed (the full fit ran off the overlap); the fit now held within
the search's bound plus a pixel, such a registration determines no shift instead.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from registration import dipoles_bz  # benchmarks/registration.py (not smm_daq's)

from smm_daq.analysis import registration
from smm_daq.analysis.registration import CHI2_2DOF_95, estimate_registration
from smm_daq.storage.mapdata import MapData

HEIGHT = 100e-6
STEP = (20e-6, 30e-6)
SHAPE = (11, 21)  # (ny, nx)
NOISE = 0.25e-6
KINDS = {  # name: (grains, induced ratio along +x)
    "noise only, 4 grains": (4, 0.0),
    "noise only, 8 grains": (8, 0.0),
    "induced 0.2, 4 grains": (4, 0.2),
    "induced 0.5, 8 grains": (8, 0.5),
    "induced 1.5, 8 grains": (8, 1.5),
}


def scans(rng: np.random.Generator, grains: int, ratio: float, length: float | None = None
          ) -> tuple[MapData, MapData, np.ndarray]:
    """In-field and zero-field maps and the true shift: the coverage tests' `scans`; the shift
    drawn within half a pixel, or `length` pixels long along a random direction."""
    ny, nx = SHAPE
    x, y = np.arange(nx) * STEP[0], np.arange(ny) * STEP[1]
    px, py = np.meshgrid(x, y)
    if length is None:
        shift = rng.uniform(-0.5, 0.5, 2) * np.array(STEP)
    else:
        angle = rng.uniform(0.0, 2 * np.pi)
        shift = length * np.array([np.cos(angle), np.sin(angle)]) * np.array(STEP)
    rem, inf = [], []
    for _ in range(grains):
        gx, gy = rng.uniform(-0.2, 1.2, 2) * np.array([x[-1], y[-1]])
        z = -rng.uniform(5e-6, 40e-6)
        direction = rng.normal(size=3)
        m = direction / np.linalg.norm(direction) * 2e-11 * 10 ** rng.normal(0, 0.5)
        m_induced = ratio * 2e-11 * rng.lognormal(0, 0.5) * np.array([1.0, 0.0, 0.0])
        rem.append((gx, gy, z, *m))
        inf.append((gx + shift[0], gy + shift[1], z, *(m + m_induced)))
    in_field = dipoles_bz(px, py, inf, HEIGHT) + 3e-6 + rng.normal(size=px.shape) * NOISE
    remanent = dipoles_bz(px, py, rem, HEIGHT) + rng.normal(size=px.shape) * NOISE
    kw = dict(height=HEIGHT, sensor_size=(0.0, 0.0))
    return (MapData(in_field, x, y, name="in_field", applied_field=np.array([40e-6, 0, 0]), **kw),
            MapData(remanent, x, y, name="remanent", applied_field=np.zeros(3), **kw), shift)


def fits(seed: int, maps: int, grains: int, ratio: float, length: float | None = None
         ) -> list[tuple[np.ndarray, ...]]:
    """(error of the shift found, S, J, misfit factor) of each map's registration, S and J
    unscaled; with a true shift `length` pixels long, (the shift found, S, J, factor). A map
    whose registration determines no shift (`Registration.undetermined`) is left out:
    counted as not significant, and said."""
    found: list[tuple[np.ndarray, ...]] = []
    kept: list[tuple[np.ndarray, np.ndarray]] = []
    factors: list[float] = []
    rule, misfit_factor = registration._covariance, registration._misfit_factor

    def keep(sandwich: np.ndarray, jackknife: np.ndarray) -> np.ndarray:
        kept.append((sandwich[:2, :2].copy(), jackknife[:2, :2].copy()))
        return rule(sandwich, jackknife)

    def unscaled(rms_residual: float, noise_rms: float) -> float:
        factors.append(misfit_factor(rms_residual, noise_rms))
        return 1.0

    registration._covariance = keep
    registration._misfit_factor = unscaled
    try:
        rng = np.random.default_rng(seed)
        for _ in range(maps):
            in_field, remanent, shift = scans(rng, grains, ratio, length)
            reg = estimate_registration(in_field, remanent)
            if reg.undetermined:
                print("  a registration determined no shift (counted as not significant): "
                      f"{reg.undetermined}")
                continue
            taken_off = shift if length is None else 0.0
            found.append((np.array(reg.shift) - taken_off, *kept[-1], factors[-1]))
    finally:
        registration._covariance = rule
        registration._misfit_factor = misfit_factor
    return found


def _with(sd: np.ndarray, rho: float) -> np.ndarray:
    return np.array([[sd[0] ** 2, rho * sd[0] * sd[1]], [rho * sd[0] * sd[1], sd[1] ** 2]])


def _rho(c: np.ndarray) -> float:
    return float(c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])) if c[0, 0] > 0 and c[1, 1] > 0 else 0.0


def _sd(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    return np.sqrt(np.maximum(np.diag(s), np.diag(j)))


def sd_only(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    return _with(_sd(s, j), 0.0)


def mixture(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    return _with(_sd(s, j), _rho(max((s, j), key=np.linalg.det)))


def bound_max(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    half = v @ np.diag(np.sqrt(np.maximum(w, 1e-300))) @ v.T
    inv = np.linalg.inv(half)
    lam, u = np.linalg.eigh(inv @ j @ inv)
    return half @ u @ np.diag(np.maximum(lam, 1.0)) @ u.T @ half


def bound_sum(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    return s + j


def agreed(s: np.ndarray, j: np.ndarray) -> np.ndarray:
    a, b = _rho(s), _rho(j)
    return _with(_sd(s, j), float(np.sign(a) * min(abs(a), abs(b))) if a * b > 0 else 0.0)


Rule = Callable[[np.ndarray, np.ndarray, np.ndarray], bool]  # (shift, S, J): significant
# (shift, S, J, f): significant, S and J unscaled, f the misfit factor
ScaledRule = Callable[[np.ndarray, np.ndarray, np.ndarray, float], bool]


def _outside(shift: np.ndarray, cov: np.ndarray) -> bool:
    return bool(shift @ np.linalg.solve(cov, shift) >= CHI2_2DOF_95)


def _by(rule: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    return lambda shift, s, j: _outside(shift, rule(s, j))


def _both(rule: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Rule:
    """Outside both 95 % regions of `rule`'s covariance: by its SDs alone and by it whole."""
    def significant(shift: np.ndarray, s: np.ndarray, j: np.ndarray) -> bool:
        cov = rule(s, j)
        return _outside(shift, _with(np.sqrt(np.diag(cov)), 0.0)) and _outside(shift, cov)
    return significant


def _scaled(rule: Rule) -> ScaledRule:
    """`rule` on S and J both scaled by the misfit factor, as `estimate_registration` does."""
    return lambda shift, s, j, f: rule(shift, f * s, f * j)


RULES: dict[str, ScaledRule] = {
    "sd-only": _scaled(_by(sd_only)), "mixture": _scaled(_by(mixture)),
    "bound-max": _scaled(_by(bound_max)), "bound-sum": _scaled(_by(bound_sum)),
    "agreed": _scaled(_by(agreed)),
    "sd-and-mixture": _scaled(lambda shift, s, j: (_outside(shift, sd_only(s, j))
                                                   and _outside(shift, mixture(s, j)))),
    "sum-both": _scaled(_both(bound_sum)),
    # sum-both with the misfit factor on neither, or on one, of the two estimates
    "sum-unscaled": lambda shift, s, j, f: _both(bound_sum)(shift, s, j),
    "sum-S-scaled": lambda shift, s, j, f: _both(bound_sum)(shift, f * s, j),
    "sum-J-scaled": lambda shift, s, j, f: _both(bound_sum)(shift, s, f * j),
}


def _rates(args: argparse.Namespace, seeds: list[int], length: float | None) -> None:
    """Per kind and rule, the shifts called significant (a shift at zero, or `length`)."""
    title = ("false positives of a shift at zero" if length is None
             else f"power: a true shift of {length:g} pixel called significant")
    print(f"{title}, {args.maps} maps per seed, seeds {seeds}")
    print(f"{'kind':24s}" + "".join(f"{r:>22s}" for r in RULES))
    for kind, (grains, ratio) in KINDS.items():
        if args.kinds and kind not in args.kinds:
            continue
        counts: dict[str, list[int]] = {r: [] for r in RULES}
        for seed in seeds:
            found = fits(seed, args.maps, grains, ratio, length)
            for name, rule in RULES.items():
                counts[name].append(sum(rule(sh, s, j, f) for sh, s, j, f in found))
        n = args.maps * len(seeds)
        print(f"{kind:24s}" + "".join(
            f"{100 * sum(c) / n:8.1f} % ({min(c):3d}-{max(c):3d})" for c in counts.values()))
        print(f"{'':24s}  per seed: " + "; ".join(
            f"{r} {','.join(map(str, c))}" for r, c in counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="1,2,3,4,5",
                        help="comma-separated seeds, each a set of --maps maps per kind")
    parser.add_argument("--maps", type=int, default=120, help="maps per seed and kind")
    parser.add_argument("--power", default="0.5,1",
                        help="comma-separated lengths (pixels) of true shifts to find, or ''")
    parser.add_argument("--kinds", default="",
                        help="semicolon-separated kinds to run (default all): "
                        + "; ".join(KINDS))
    args = parser.parse_args()
    args.kinds = [k.strip() for k in args.kinds.split(";") if k.strip()]
    unknown = [k for k in args.kinds if k not in KINDS]
    if unknown:
        parser.error(f"unknown kinds {unknown}; expected some of {list(KINDS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    start = time.perf_counter()
    _rates(args, seeds, None)
    for length in (float(v) for v in args.power.split(",") if v.strip()):
        _rates(args, seeds, length)
    n = args.maps * len(seeds)
    print(f"a 5 % rate over {n} maps: ± {100 * np.sqrt(0.05 * 0.95 / n):.1f} % (1 SD); "
          f"{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
