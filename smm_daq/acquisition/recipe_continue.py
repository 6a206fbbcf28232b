"""Continuing a recipe that was cut off (`smm-daq run --continue`): which entries a recipe
makes are in the session file already, and whether they are this recipe's own.

A scan entry is the recipe's own when it stores the same recipe text and the plan the recipe
gives now (grid, field, height, ...): finished, it is skipped; cut off, it is resumed after the
checks `smm-daq resume` makes (`check_resume`). A subtraction entry is the recipe's own when
it was made from the same two entries; it is skipped. Anything else is refused, naming the
entry and what differs, before the rig is touched. What a writer killed laying an entry out
left is the recipe's own by the same marks (`own_cut_off`): written again under its name,
also one an earlier release's rule allowed and today's does not.

A subtraction written before a shift not significantly different from zero was left out by
default (its registration has no `shift_found`) that applied such a shift makes the rest of
the recipe apply one too (`applied_by_earlier_rule`); one written before the correlation of
the shift's x and y errors was recorded (no `registration/shift_correlation`) was decided by
the shift's SDs alone, and so are the rest of the recipe's (`decided_by_sds_alone`): one
recipe's subtractions made alike.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np

from smm_daq.acquisition.plan import ScanPlan
from smm_daq.acquisition.resumable import check_resume
from smm_daq.analysis.registration import Registration, shift_is_significant
from smm_daq.articles import with_article
from smm_daq.errors import InputError
from smm_daq.instruments.profile import Profile
from smm_daq.storage.checks import corrupt_guard
from smm_daq.storage.h5file import read_whole, text
from smm_daq.storage.nexus import EntryInfo
from smm_daq.storage.scan_entry import check_same_profile
from smm_daq.storage.staging import cut_off_entries

NEW, DONE, RESUME = "new", "done", "resume"  # what a step that writes an entry has left
RESUME_HINT = "continue the recipe with the instrument profile it was started with (--profile)"
ELSEWHERE = "give the scan another name in the recipe, or --out another file"


def scan_state(recipe_text: str, plan: ScanPlan, info: EntryInfo, out: str | Path,
               profile: Profile) -> tuple[str, float]:
    """DONE or RESUME for the existing entry `info` that the recipe's scan `plan` writes, and
    the part of its lines left to measure; InputError when it is not this recipe's own, or
    cannot be resumed with `profile`."""
    name = plan.name
    if info.problem:
        raise InputError(f"entry '{name}' of {out} is unreadable ({info.problem}); expected "
                         f"the scan this step makes: {ELSEWHERE}")
    if info.kind != "scan":
        raise InputError(f"entry '{name}' of {out} is {with_article(info.kind)} entry; "
                         f"expected the scan this step makes: {ELSEWHERE}")
    stored_plan, stored_recipe = _stored(out, name)
    diff = stored_plan.difference(plan)
    if diff is not None:
        raise InputError(f"entry '{name}' of {out} was scanned with another plan than the "
                         f"recipe gives now ({diff}); expected the plan it was started with: "
                         f"run the recipe as it was, or {ELSEWHERE}")
    if not same_recipe(stored_recipe, recipe_text):
        what = ("was not made by a recipe" if not stored_recipe else "was made by another "
                f"recipe text ({_first_difference(stored_recipe, recipe_text)})")
        raise InputError(f"entry '{name}' of {out} {what}; expected this recipe's own entry: "
                         f"run the recipe it was made by, or {ELSEWHERE}")
    if info.status == "finished":
        if stored_recipe != recipe_text:  # its [recipe] profile aside: taken on this profile
            check_same_profile(_stored_fingerprint(out, name), profile,
                               f"{out}, entry '{name}'", hint=RESUME_HINT)
        return DONE, 0.0
    entry = check_resume(out, name, profile, hint=RESUME_HINT)
    return RESUME, entry.lines_left / max(entry.line_done.size, 1)


def made_by_recipe(recipe_text: str, info: EntryInfo, out: str | Path,
                   sources: tuple[str, str] | None = None) -> bool:
    """Whether the existing entry `info` is one `run --continue` would take as this recipe's
    own: a scan storing this recipe's text, or, `sources` given (a subtract step's in-field
    and remanent entries), the subtraction of those two."""
    if info.problem:
        return False
    if sources is not None:
        return info.kind == "induced" and info.sources == sources
    if info.kind != "scan":
        return False
    try:
        return same_recipe(_stored(out, info.name)[1], recipe_text)
    except InputError:  # damaged: not this recipe's to continue
        return False


def subtract_state(in_field: str, remanent: str, info: EntryInfo, out: str | Path) -> str:
    """DONE for the existing entry `info` that a subtract step of `in_field` − `remanent`
    writes; InputError when it was made from other entries, or is no subtraction."""
    made_from = (f"from {', '.join(repr(s) for s in info.sources)}" if info.sources
                 else "from no entries")
    if info.problem or info.kind != "induced" or info.sources != (in_field, remanent):
        kind = "unreadable" if info.problem else info.kind
        raise InputError(f"entry '{info.name}' of {out} is {with_article(kind)} entry made "
                         f"{made_from}; expected the subtraction '{in_field}' − '{remanent}' "
                         "this step makes: give the subtraction another name in the recipe, or "
                         "--out another file")
    return DONE


def own_cut_off(out: str | Path, recipe_text: str,
                steps: Mapping[str, tuple[str, str] | None]) -> set[str]:
    """The entries of `steps` (by name: a subtraction's in-field and remanent entries, None
    for a scan) whose writer, this recipe's, was killed laying them out in `out`
    (`cut_off_entries`): a scan storing this recipe's text, a subtraction of those two
    entries. Another recipe's, or one cut off before it held what tells, is not this
    recipe's: a write of its name makes a new entry."""
    def read(f: h5py.File) -> set[str]:
        with corrupt_guard(str(out)):
            return {c.name for c in cut_off_entries(f)
                    if c.name in steps and isinstance(f[c.key], h5py.Group)
                    and _made_so(f[c.key], recipe_text, steps[c.name])}

    return read_whole(out, read)


def _made_so(g: h5py.Group, recipe_text: str, sources: tuple[str, str] | None) -> bool:
    """Whether the cut-off group `g` is the scan this recipe text lays out (`sources` None),
    or the subtraction of `sources`."""
    kind = text(g.attrs.get("kind", ""))
    if sources is None:
        node = g.get("recipe")
        return (kind == "scan" and isinstance(node, h5py.Dataset) and node.shape == ()
                and node.dtype.kind in "OSU" and same_recipe(text(node), recipe_text))
    made_from = tuple(text(s) for s in np.atleast_1d(g.attrs.get("sources", [])))
    return kind == "induced" and made_from == sources


def same_recipe(stored: str, now: str) -> bool:
    """Whether the recipe text a scan entry stores is the text `now`, its `[recipe] profile`
    line aside: which profile runs a recipe is no part of the work it lays out (`--profile`
    chose it before recipes named theirs, and a scan resumed is checked against the profile
    it stored), so a recipe cut off before it named its profile goes on once it does."""
    return stored == now or _without_profile(stored) == _without_profile(now)


_TABLE = re.compile(r"\s*\[")
_RECIPE_TABLE = re.compile(r"\s*\[\s*recipe\s*\]\s*(#.*)?$")
_PROFILE_KEY = re.compile(r"\s*profile\s*=")


def _without_profile(recipe_text: str) -> str:
    """`recipe_text` less its `[recipe] profile = ...` line (`_profile_lines`)."""
    aside = _profile_lines(recipe_text)
    if not aside:
        return recipe_text
    return "".join(line for i, line in enumerate(recipe_text.splitlines(keepends=True))
                   if i not in aside)


def _profile_lines(recipe_text: str) -> set[int]:
    """The index of `recipe_text`'s `[recipe] profile = ...` line among its lines; none where
    that line cannot be told apart so (the text read without it must be the same TOML less
    that key)."""
    lines = recipe_text.splitlines(keepends=True)
    aside: set[int] = set()
    in_recipe = False
    for i, line in enumerate(lines):
        if _TABLE.match(line):
            in_recipe = bool(_RECIPE_TABLE.match(line))
        elif in_recipe and _PROFILE_KEY.match(line):
            aside.add(i)
    if not aside:
        return aside
    try:
        whole = tomllib.loads(recipe_text)
        less = tomllib.loads("".join(ln for i, ln in enumerate(lines) if i not in aside))
    except (tomllib.TOMLDecodeError, RecursionError, ValueError):
        return set()
    head = whole.get("recipe")
    if isinstance(head, dict):
        head.pop("profile", None)
    return aside if whole == less else set()


def _stored(out: str | Path, name: str) -> tuple[ScanPlan, str]:
    """The plan and the recipe text a scan entry stores (InputError when either is missing)."""
    where = f"{out}, entry '{name}'"

    def read(f: h5py.File) -> dict[str, str]:
        texts: dict[str, str] = {}
        for key in ("plan", "recipe"):
            node = f[name].get(key)
            if not isinstance(node, h5py.Dataset) or node.shape != () \
                    or node.dtype.kind not in "OSU":
                raise InputError(f"has no '{key}' text; expected the text every scan entry "
                                 "holds: the entry is damaged", source=where)
            texts[key] = text(node)
        return texts

    texts = read_whole(out, read)
    return ScanPlan.from_text(texts["plan"], source=f"{where}, 'plan'"), texts["recipe"]


def _stored_fingerprint(out: str | Path, name: str) -> str:
    """The profile fingerprint (JSON) a scan entry stores; InputError when it has none."""
    def read(f: h5py.File) -> str | None:
        node = f[name].get("profile_fingerprint")
        ok = isinstance(node, h5py.Dataset) and node.shape == () and node.dtype.kind in "OSU"
        return text(node) if ok else None

    stored = read_whole(out, read)
    if stored is None:
        raise InputError("has no 'profile_fingerprint' text, so the profile it was taken with "
                         "cannot be told from the recipe's; expected the text every scan entry "
                         f"holds: {RESUME_HINT}", source=f"{out}, entry '{name}'")
    return stored


def _first_difference(stored: str, now: str) -> str:
    """Where two recipe texts first differ, by line, as people compare them: their
    `[recipe] profile` lines aside (`same_recipe` sets them aside), so the line named is one
    that makes the recipes differ, not a profile line that differs beside it."""
    old, new = _numbered(stored), _numbered(now)
    for (i, a), (j, b) in zip(old, new, strict=False):
        if a != b:
            then = "" if i == j else f" (line {i} then)"
            return f"line {j} was {a!r}{then}, now {b!r}"
    if len(old) < len(new):
        j, b = new[len(old)]
        return f"line {j} ({b!r}) is new"
    if len(old) > len(new):
        i, a = old[len(new)]
        return f"its line {i} ({a!r}) is gone"
    return "they differ in line endings or trailing whitespace"


def _numbered(recipe_text: str) -> list[tuple[int, str]]:
    """The lines of `recipe_text` with their numbers (from 1), its `[recipe] profile` line
    left out (`_profile_lines`)."""
    aside = _profile_lines(recipe_text)
    return [(i + 1, line) for i, line in enumerate(recipe_text.splitlines()) if i not in aside]


def applied_by_earlier_rule(out: str | Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """Of the subtraction entries `names` in `out`, those written by a release that applied
    every shift the registration found (no `registration/shift_found`) whose shift was not
    significantly different from zero: today's default would have left it out."""
    def read(f: h5py.File) -> tuple[str, ...]:
        with corrupt_guard(str(out)):
            found = []
            for name in names:
                g, where = f.get(f"{name}/registration"), f"{out}, entry '{name}'"
                if not isinstance(g, h5py.Group) or "shift_found" in g or not all(
                        key in g for key in ("registered", "shift", "shift_errors")) \
                        or not _registered(g, where):
                    continue
                shift, sd = (_pair(g, key, where) for key in ("shift", "shift_errors"))
                reg = Registration(shift=(float(shift[0]), float(shift[1])),
                                   shift_sd=(float(sd[0]), float(sd[1])))
                if np.any(shift != 0.0) and not shift_is_significant(reg):
                    found.append(name)
            return tuple(found)

    return read_whole(out, read) if names else ()


def decided_by_sds_alone(out: str | Path, names: tuple[str, ...]) -> tuple[str, ...]:
    """Of the subtraction entries `names` in `out`, those whose shift's significance was
    decided by its SDs alone: by a release that did (no `registration/shift_correlation`), or
    as one did (`registration/by_sds_alone` set, a recipe begun so and continued)."""
    def read(f: h5py.File) -> tuple[str, ...]:
        with corrupt_guard(str(out)):
            found = []
            for name in names:
                g, where = f.get(f"{name}/registration"), f"{out}, entry '{name}'"
                if not isinstance(g, h5py.Group) or "registered" not in g \
                        or not _registered(g, where):
                    continue
                if "shift_correlation" not in g:
                    found.append(name)
                elif not -1.0 <= _scalar(g, "shift_correlation", where, CORRELATION) <= 1.0:
                    raise _damaged(g, "shift_correlation", where, CORRELATION)
                elif "by_sds_alone" in g and _flag(g, "by_sds_alone", where, FLAG_SDS):
                    found.append(name)
            return tuple(found)

    return read_whole(out, read) if names else ()


def _damaged(g: h5py.Group, key: str, where: str, expected: str) -> InputError:
    node = g[key]
    if isinstance(node, h5py.Group):
        what = "a group"
    elif node.shape == ():
        value = node[()]
        value = value.item() if isinstance(value, np.generic) else value
        what = repr(value.decode("utf-8", "replace") if isinstance(value, bytes) else value)
    else:
        what = f"an array of shape {node.shape}"
    return InputError(f"'registration/{key}' is {what}; expected {expected}", source=where)


CORRELATION = "a correlation from -1 to 1"
FLAG = "0 or 1 (whether the maps were registered)"
FLAG_SDS = "0 or 1 (whether the shift's significance was decided by its SDs alone)"


def _scalar(g: h5py.Group, key: str, where: str, expected: str) -> float:
    """`registration/<key>`, a number (NaN where it is a NaN: the caller's range refuses it);
    InputError saying `expected` for anything else (a group, text, an array)."""
    node = g[key]
    if not (isinstance(node, h5py.Dataset) and node.shape == () and node.dtype.kind in "biuf"):
        raise _damaged(g, key, where, expected)
    return float(node[()])


def _registered(g: h5py.Group, where: str) -> bool:
    """`registration/registered`: 0 or 1."""
    return _flag(g, "registered", where, FLAG)


def _flag(g: h5py.Group, key: str, where: str, expected: str) -> bool:
    """`registration/<key>`: 0 or 1."""
    flag = _scalar(g, key, where, expected)
    if flag not in (0.0, 1.0):
        raise _damaged(g, key, where, expected)
    return flag == 1.0


def _pair(g: h5py.Group, key: str, where: str) -> np.ndarray:
    """`registration/<key>`: a shift or its SDs, two finite numbers (m)."""
    node = g[key]
    if not (isinstance(node, h5py.Dataset) and node.shape == (2,)
            and node.dtype.kind in "iuf" and np.all(np.isfinite(node[()]))):
        raise _damaged(g, key, where, "two finite numbers (x and y, m)")
    return np.asarray(node[()], float)
