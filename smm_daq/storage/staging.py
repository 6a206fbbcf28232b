"""How an entry comes into a session file whole, also over an entry of the same name.

An entry is written under a temporary name, `.NAME.smm_daq_staging`, carrying the STAGING
mark, moved in (`move_in`), and only then is the mark taken off. Over an existing entry
(`--overwrite`) it is swapped in (`replace_entry`): once the new group is whole, the old
entry is marked REPLACED, moved aside to `.NAME.smm_daq_replaced`, the new one moved in and
its mark taken off, and only then is the old one deleted. HDF5 has no atomic rename over a
name, so a writer killed part-way leaves one of these, and the next writer of NAME (through
`clear_unfinished`) or `repair` (through `settle_replacement`) makes it whole again:

- a group marked STAGING and no REPLACED one: the new entry may be partial; it is deleted
  and the old entry, if any, is as it was;
- a group marked REPLACED (at NAME or aside): the new entry was whole before the old was
  marked, so the swap is finished; where the new one is gone, the old one is put back.

Either the old entry or the new one whole, never neither. The writer flushes before each
step, so a kill also leaves the steps on disk in the order they were made.

Files from releases before the mark came off only after the move hold, where such a writer
was killed between the two, an unmarked `.NAME.smm_daq_staging` group: the whole entry that
writer had written, not yet under its name. `clear_unfinished` deletes it when it is
certainly smm-daq's (our NXentry, program_name smm-daq, an entry kind) and holds nothing
acquired: the new write of NAME supersedes it, as it does a marked one. Every writer (of an
analysis product, a scan, an image), NAME being free, moves such an entry other than a scan's
empty layout in under NAME first (the step its writer did not make) and swaps its own entry
in over it (`put_in`), so that a kill before the new entry is whole leaves the earlier one
whole under its name. Anything else under
that name is refused, naming what to do, and left as it is. `repair` removes such a group
holding nothing acquired, as it does a marked one; one holding acquired data, which
smm-daq never deletes, it moves in under NAME where that is free (the step its writer did
not make), else keeps where it is. `cut_off_entries` lists what killed writers left, each
with its state (`CutOff`), so `info` and `repair` say what is true of it: an overwrite cut
off before the old entry was marked leaves the old entry as it was.
"""

from __future__ import annotations

from dataclasses import dataclass

import h5py
import numpy as np

from smm_daq import PROGRAM_NAME
from smm_daq.errors import InputError
from smm_daq.shell_words import command_line, file_shown
from smm_daq.storage.names import lookalike, other_form_note, shown_name
from smm_daq.storage.strings import text

STAGING = "smm_daq_staging"  # marks an entry still being written under a temporary name
REPLACED = "smm_daq_replaced"  # marks an entry being replaced by a whole new one
ACQUIRED_KINDS = ("scan", "import", "optical")  # measured data, an image too: never overwritten
# (an import but by an import of that name, `nexus._reimport`)


def staged_name(name: str) -> str:
    """The temporary name an entry `name` is written under before it is moved in whole."""
    return f".{name}.{STAGING}"


def aside_name(name: str) -> str:
    """Where entry `name` waits, marked REPLACED, while its successor is moved in."""
    return f".{name}.{REPLACED}"


def unstaged_name(key: str) -> str:
    """The entry a group of name `key` (staged, aside, or its own) was written as."""
    for mark in (STAGING, REPLACED):
        if key.startswith(".") and key.endswith(f".{mark}") and len(key) > len(mark) + 2:
            return key[1:-len(mark) - 1]
    return key


def resolves(f: h5py.Group, key: str) -> bool:
    """`key` leads to an object: False for a link to nothing, to a file not found, or round
    in a loop (a soft link to itself), which HDF5 refuses to follow."""
    try:
        return f.get(key) is not None
    except (KeyError, RuntimeError, OSError):
        return False


def _present(f: h5py.Group, key: str) -> bool:
    """Anything of that name, a link to nothing included."""
    return f.get(key, getlink=True) is not None


def _marked(f: h5py.Group, key: str, mark: str) -> bool:
    """A group of f's own (not a link) under `key` that carries `mark`."""
    return (isinstance(f.get(key, getlink=True), h5py.HardLink)
            and isinstance(f[key], h5py.Group) and mark in f[key].attrs)


def move_in(f: h5py.Group, staged: str, name: str) -> None:
    """Give the finished group `staged` its name `name`, then take its STAGING mark off: a
    writer killed at any point leaves either the entry whole or a group still marked, which
    listings hide, `repair` leaves out and the next writer of `name` clears."""
    f.move(staged, name)
    del f[name].attrs[STAGING]


def replace_entry(f: h5py.Group, staged: str, name: str) -> None:
    """Swap the finished group `staged` (marked STAGING) in for the entry `name`, so that a
    writer killed at any step leaves the old entry or the new one whole (module doc)."""
    f.file.flush()  # the new entry whole on disk before the old one says so
    f[name].attrs[REPLACED] = 1
    _finish_replacement(f, name)


def put_in(f: h5py.Group, staged: str, name: str, *, replacing: bool) -> None:
    """Give the finished group `staged` its name `name`: moved in (`move_in`), or, where
    `replacing` the entry there (an overwrite, or an earlier release's entry that
    `clear_unfinished` kept), swapped in (`replace_entry`). Interrupted part-way (Ctrl-C),
    the swap is settled before the file is closed: the old entry or the new one whole."""
    if not replacing:
        move_in(f, staged, name)
        return
    try:
        replace_entry(f, staged, name)
    except BaseException:
        settle_replacement(f, name)
        if staged in f:  # stopped before the old one was marked: it stays
            del f[staged]
        raise


def _finish_replacement(f: h5py.Group, name: str) -> None:
    """The rest of `replace_entry` from wherever it stopped, the old entry marked REPLACED
    and the new one whole, at its staged name or at `name`."""
    aside = aside_name(name)
    if _marked(f, name, REPLACED):
        f.file.flush()
        f.move(name, aside)
    if not _present(f, name):
        f.file.flush()
        f.move(staged_name(name), name)
    if STAGING in f[name].attrs:
        f.file.flush()
        del f[name].attrs[STAGING]
    f.file.flush()
    del f[aside]


def settle_replacement(f: h5py.Group, name: str, *, source: str | None = None) -> None:
    """Finish a replacement of entry `name` that a killed writer left, or, where its new
    entry is gone, put the old one back; nothing when no replacement was under way.
    InputError, nothing changed, where the old entry waits aside and `name` is a link
    (`source`: the file to name, default f's)."""
    aside = aside_name(name)
    if _marked(f, aside, REPLACED):
        old = aside
        _check_not_a_link(f, name, source or f.file.filename)
    elif _marked(f, name, REPLACED):
        old = name
    else:
        return
    conflict = settle_conflict(f, name)
    if conflict is not None:
        raise InputError(conflict, source=source or f.file.filename)
    if (old == aside and _present(f, name)) or _marked(f, staged_name(name), STAGING):
        _finish_replacement(f, name)
        return
    if old == aside:
        f.move(aside, name)
    del f[name].attrs[REPLACED]


def _check_not_a_link(f: h5py.Group, name: str, source: str) -> None:
    """A link under `name` is neither the old entry nor the new one (smm-daq writes no
    links): finishing the swap would delete the old entry for it, and putting the old one
    back would delete the link, so neither is done."""
    link = link_in_the_way(f, name)
    if link is not None:
        raise InputError(
            f"'{name}' is {link}, not an entry, while entry '{name}' was being replaced: the "
            f"old entry waits, whole, at '{aside_name(name)}'; expected the entry or nothing "
            f"under '{name}': delete or rename the link with an HDF5 tool (h5py, HDFView), "
            "then `smm-daq repair` finishes the replacement or puts the old entry back; "
            "nothing was changed", source=source)


def settle_conflict(f: h5py.Group, name: str) -> str | None:
    """Why a replacement of entry `name` under way may not be settled, as a message naming
    each object and what to do, where what lies under `name` and its aside name is no state
    a killed writer leaves (another program's, or a group copied in by hand), so that
    settling it would move onto a name taken or delete the old entry for what is not the
    new one; None where it may (a link under `name` is `_check_not_a_link`'s)."""
    aside, staged = aside_name(name), staged_name(name)
    then = ("then `smm-daq repair` finishes the replacement or puts the old entry back; "
            "nothing was changed")
    old = aside if _marked(f, aside, REPLACED) else name
    if old == aside and _marked(f, name, REPLACED):
        return (f"'{name}' and '{aside}' are both groups marked as the old entry '{name}' "
                "being replaced, which smm-daq never leaves (one of them copied in by hand?); "
                "expected one of them: keep the one you want, renaming or deleting the other "
                f"with an HDF5 tool (h5py, HDFView), {then}")
    if old == aside and _present(f, name) and not written_by_us(f, name):
        return (f"'{name}' holds {_what(f, name)}, not the new entry smm-daq moved in, while "
                f"the old entry '{name}' waits, whole and marked as replaced, at '{aside}'; "
                f"expected the new entry or nothing under '{name}': rename or delete it with "
                f"an HDF5 tool (h5py, HDFView), {then}")
    if (old == name and _marked(f, name, REPLACED) and _marked(f, staged, STAGING)
            and _present(f, aside)):
        return (f"'{aside}', where smm-daq moves entry '{name}' aside while replacing it, "
                f"holds {_what(f, aside)} that smm-daq did not put there, while the old entry "
                f"'{name}' is marked as replaced and its successor waits at '{staged}'; "
                "expected that name free: rename or delete it with an HDF5 tool (h5py, "
                f"HDFView), {then}")
    return None


def _what(f: h5py.Group, key: str) -> str:
    """The object under `key`, said as a phrase for a message."""
    link = link_in_the_way(f, key)
    if link is not None:
        return link
    node = f[key]
    if not isinstance(node, h5py.Group):
        return "a dataset" if isinstance(node, h5py.Dataset) else "an object that is no group"
    for mark, state in ((STAGING, "being written"), (REPLACED, "replaced")):
        if mark in node.attrs:
            return f"a group marked as {state}"
    return "a group smm-daq did not write"


def link_in_the_way(f: h5py.Group, name: str) -> str | None:
    """The link (soft or external) under `name`, said as a phrase, that keeps a replacement
    of entry `name` from being settled; None where there is none."""
    link = f.get(name, getlink=True)
    if link is None or isinstance(link, h5py.HardLink):
        return None
    if isinstance(link, h5py.ExternalLink):
        return f"an external link to '{link.path}' in {file_shown(link.filename)}"
    return f"a soft link to '{link.path}'{_where_it_leads(f, name)}"


def _where_it_leads(f: h5py.Group, key: str) -> str:
    """How the soft link `key` fails to lead to an object, said for a message ("" where it
    leads to one): to nothing, or round in a loop (through itself or other links)."""
    try:
        return "" if f.get(key) is not None else ", which does not exist"
    except (KeyError, RuntimeError, OSError):
        return ", which leads round in a loop of links (HDF5 cannot follow it)"


def link_not_written_over(f: h5py.Group, name: str) -> str | None:
    """Why no entry is written under `name` where a link (soft or external, to an entry, to
    nothing or round in a loop) holds it, as a message naming the link; None where none
    does. A writer never follows a link into its target nor deletes another program's."""
    link = link_in_the_way(f, name)
    if link is None:
        return None
    return (f"'{name}' is {link}, not an entry, and smm-daq never writes over a link; "
            "expected another entry name (or the link removed with an HDF5 tool: h5py, "
            "HDFView)")


def key_after_clearing(f: h5py.Group, name: str) -> str | None:
    """Where the group that `clear_unfinished` leaves as entry `name` lies now (`name`, its
    staged name or its name aside), or None where it leaves the name free; reads only, so
    that checks made before any work agree with the writer."""
    aside, staged = aside_name(name), staged_name(name)
    if _marked(f, aside, REPLACED):  # as settle_replacement finishes or undoes the swap
        if _present(f, name):
            return name
        return staged if _marked(f, staged, STAGING) else aside
    if _marked(f, name, REPLACED):
        return staged if _marked(f, staged, STAGING) else name
    if _marked(f, name, STAGING) or not _present(f, name):
        return None
    return name


def replacements_under_way(f: h5py.Group) -> list[str]:
    """The entries whose replacement a killed writer left (a group marked REPLACED)."""
    return list(dict.fromkeys(unstaged_name(key) for key in f if _marked(f, key, REPLACED)))


@dataclass(frozen=True)
class CutOff:
    """A group that a writer killed part-way through entry `name` left, other than those of
    a replacement under way (`replacements_under_way`)."""

    name: str  # the entry it was written as
    key: str  # the group's name in the file
    kept: bool  # entry `name` is in the file as it was before (an overwrite cut off early)
    earlier: bool  # an earlier release's unmarked staged entry (module doc), whole
    acquired: str  # the kind of acquired data that earlier entry holds, else ""
    fixed: str = ""  # why entry `name`, kept, is not replaced by --overwrite; "" where it is
    reimport: bool = False  # entry `name` is an import, which an import alone replaces

    @property
    def kept_rule(self) -> str:
        """What may replace entry `name` (kept for `fixed`), said after "it"."""
        return ("is replaced only by an import of that name with --overwrite" if self.reimport
                else "is never overwritten")


def cut_off_entries(f: h5py.Group) -> list[CutOff]:
    """What writers killed part-way left in `f`: groups marked STAGING, under the staged
    name or their own, and earlier releases' unmarked staged entries that are certainly
    ours (a group of another program's under such a name is not counted)."""
    replacing = set(replacements_under_way(f))
    found = []
    for key in f:
        name = unstaged_name(key)
        if name in replacing:
            continue
        earlier = earlier_leftover(f, key)
        if not earlier and not _marked(f, key, STAGING):
            continue
        kept = key != name and _present(f, name) and not _marked(f, name, STAGING)
        acquired = text(f[key].attrs["kind"]) if earlier and _holds_acquired(f[key]) else ""
        found.append(CutOff(name, key, kept, earlier, acquired,
                            _never_overwritten(f, name) if kept else "",
                            kept and _ours(f, name) and kind_held(f, name) == "import"))
    return found


def _never_overwritten(f: h5py.Group, name: str) -> str:
    """What makes entry `name` one that a writer's --overwrite is refused for (acquired data,
    an import but by an import, or not smm-daq's), said as a phrase; "" for an analysis
    product, which it replaces."""
    if not _ours(f, name):
        return "not an entry smm-daq wrote"
    kind = text(f[name].attrs["kind"])
    return f"acquired data (kind '{kind}')" if kind in ACQUIRED_KINDS else ""


def left_out_note(c: CutOff, path: str) -> str:
    """What `repair` tells of a cut-off entry it left out, true for each state: the new entry
    gone, and the old one, where there was one, as it was."""
    writer = "its writer, an earlier smm-daq, killed before moving it in" if c.earlier else (
        "its writer killed")
    if c.fixed:
        return (f"left out a write of entry '{c.name}', cut off while written ({writer}); "
                f"entry '{c.name}', {c.fixed}, is as it was, whole (it {c.kept_rule})")
    if c.kept:
        return (f"left out an overwrite of entry '{c.name}', cut off while written ({writer}); "
                f"entry '{c.name}' is as it was before it, whole (writing it again with "
                "--overwrite replaces it)")
    run = command_line(["smm-daq", "run", "RECIPE", "--out", path, "--continue"])
    return (f"left out entry '{c.name}', cut off while written ({writer}); writing it again "
            f"(a recipe's: `{run}`) makes it anew")


def kept_note(c: CutOff, *, moved_in: bool) -> str:
    """What `repair` tells of an earlier release's staged entry holding acquired data, which
    it never deletes: moved in under its name where that was free, else kept where it is."""
    what = (f"acquired data (kind '{c.acquired}') that an earlier smm-daq wrote as entry "
            f"'{c.name}' and was killed before moving in")
    if moved_in:
        return f"moved '{c.key}' in as entry '{c.name}': {what}"
    return (f"kept '{c.key}' as it is: {what}, while '{c.name}' is another entry: rename it "
            "with an HDF5 tool (h5py, HDFView) to keep it under a name of its own")


def earlier_leftover(f: h5py.Group, key: str) -> bool:
    """`key` is an earlier release's unmarked staged entry, certainly ours (module doc)."""
    return (key == staged_name(unstaged_name(key)) and not _marked(f, key, STAGING)
            and _ours(f, key))


def clear_unfinished(f: h5py.Group, name: str, *, keep_earlier: bool = False) -> bool:
    """Make way for a new write of entry `name` where a writer killed part-way through it
    left something: a replacement is settled, a group still marked STAGING (under the
    temporary name or, killed between the move and the mark's removal, under `name`)
    deleted, and an earlier release's unmarked staged group deleted when it is certainly
    ours and holds nothing acquired (module doc). InputError, the file unchanged, when
    something else sits under the temporary name (`check_staged_name_free`). Other groups
    are never touched.

    `keep_earlier` (every writer: it then gives its entry its name with `put_in`): such an
    earlier entry, not a scan, whose name is free, is moved in under `name` instead (the
    step its writer did not make), so that it is deleted only once the new entry is whole,
    by the swap: True then, and the caller replaces it whatever it would refuse to
    overwrite. (A scan's earlier layout holds nothing to keep.) InputError, the file
    unchanged, when another entry has the same name in another Unicode form
    (`check_no_lookalike`)."""
    check_no_lookalike(f, name)
    settle_replacement(f, name)
    staged = staged_name(name)
    for key in (staged, name):
        if _marked(f, key, STAGING):
            del f[key]
    if not _present(f, staged):
        return False
    check_staged_name_free(f, name)
    if (keep_earlier and not _present(f, name) and not _present(f, aside_name(name))
            and text(f[staged].attrs["kind"]) != "scan"):
        f.move(staged, name)
        return True
    del f[staged]  # a whole earlier write of `name`, superseded by this one
    return False


def check_no_lookalike(f: h5py.Group, name: str) -> None:
    """InputError where an entry of `f` is named `name` in another Unicode form (an earlier
    release's, named with a decomposed accent): a new entry beside it would look the same in
    every listing, and which one a name typed later meant could not be told."""
    other = lookalike(f, name)
    if other is not None:
        raise InputError(
            f"entry name {shown_name(name)} looks the same as entry {shown_name(other)} of "
            f"the file, written in another Unicode form ({other!a}); expected a name "
            "unlike every entry's: choose another name: nothing was written",
            source=f.file.filename)


def check_staged_name_free(f: h5py.Group, name: str) -> None:
    """InputError when the temporary name of entry `name` holds what a new write of it may
    not clear: anything but a group marked STAGING or an earlier release's unmarked staged
    entry that is certainly ours and holds nothing acquired (module doc)."""
    staged = staged_name(name)
    if not _present(f, staged) or _marked(f, staged, STAGING):
        return
    if not _ours(f, staged):
        raise InputError(
            f"'{staged}', the name smm-daq writes entry '{name}' under before moving it in, "
            "holds something smm-daq did not write there (another program's?); expected that "
            "name free: rename or delete it with an HDF5 tool (h5py, HDFView), or choose "
            "another entry name", source=f.file.filename)
    if _holds_acquired(f[staged]):
        raise InputError(
            f"'{staged}' holds entry '{name}' as an earlier smm-daq wrote it before it was "
            f"killed, not yet under its name: acquired data (kind "
            f"'{text(f[staged].attrs['kind'])}'), which smm-daq never deletes; expected that "
            f"name free: {_keep_hint(f, name)}, or choose another entry name",
            source=f.file.filename)


def _keep_hint(f: h5py.Group, name: str) -> str:
    """How to keep an earlier release's staged entry holding acquired data under a name: its
    own where that is free once a killed writer's leftovers there are cleared, as `repair`
    finds it (a group still marked STAGING under the name is no entry)."""
    if key_after_clearing(f, name) is not None:
        return (f"'{name}' being another entry, rename it with an HDF5 tool (h5py, HDFView) "
                "to keep it under a name of its own")
    repair = command_line(["smm-daq", "repair", f.file.filename])
    return (f"`{repair}` moves it in as '{name}' (or rename it with an HDF5 tool, h5py or "
            "HDFView)")


def written_by_us(f: h5py.Group, key: str) -> bool:
    """An entry smm-daq wrote: a group of its own (not a link) with a kind and its program
    name; anything else there is another tool's, and never replaced or cleared."""
    if not isinstance(f.get(key, getlink=True), h5py.HardLink):
        return False
    g = f[key]
    if not isinstance(g, h5py.Group):
        return False
    program = g.get("program_name")
    return (bool(text(g.attrs.get("kind", "")))
            and isinstance(program, h5py.Dataset) and program.shape == ()
            and program.dtype.kind in "OSU" and text(program) == PROGRAM_NAME)


def kind_held(f: h5py.Group, key: str) -> str:
    """The kind of the entry under `key` (a group of its own), "" where smm-daq did not write
    it (`written_by_us`)."""
    return text(f[key].attrs.get("kind", "")) if written_by_us(f, key) else ""


def held_as(kind: str) -> str:
    """What an entry of `kind` is, said as a phrase for a message ("": not smm-daq's)."""
    if not kind:
        return "something smm-daq did not write (another program's)"
    what = {"scan": "a scan", "import": "imported data",
            "optical": "an optical image of the sample"}
    return f"{what.get(kind, 'an analysis product')} (kind '{kind}')"


def _ours(f: h5py.Group, key: str) -> bool:
    """An NXentry as smm-daq writes them (`written_by_us`, its NX_class NXentry)."""
    return written_by_us(f, key) and text(f[key].attrs.get("NX_class", "")) == "NXentry"


def _holds_acquired(g: h5py.Group) -> bool:
    """Imported data or an optical image (`ACQUIRED_KINDS`), or a scan but for one whose
    `line_done` says no line was measured (a staged scan is only its layout: an earlier
    writer moved it in before its first line); a scan without that record may hold lines,
    so it is counted as acquired."""
    kind = text(g.attrs.get("kind", ""))
    if kind != "scan":
        return kind in ACQUIRED_KINDS
    done = g.get("data/line_done")
    return not (isinstance(done, h5py.Dataset) and not np.any(done[()]))



def left_by_a_writer(f: h5py.Group, key: str) -> str | None:
    """What the group of its own under `key` is, as a phrase, where it is no entry but what a
    writer of entry NAME left or keeps while writing: marked as being written or replaced,
    an earlier release's staged entry, or another object under the names smm-daq writes
    NAME under (`staged_name`, `aside_name`); None for anything else."""
    name = unstaged_name(key)
    if _marked(f, key, STAGING):
        return (f"'{key}' is entry '{name}' still marked as being written: its writer was "
                "killed part-way, so it may be partial")
    if _marked(f, key, REPLACED):
        where = "waiting aside, marked as replaced" if key != name else (
            "marked as being replaced by a new one")
        return (f"'{key}' is the old entry '{name}', {where}: its writer was killed part-way "
                "through an overwrite")
    if earlier_leftover(f, key):
        return (f"'{key}' is entry '{name}' as an earlier smm-daq wrote it and was killed "
                "before moving it in under its name")
    return None


def not_an_entry(f: h5py.Group, key: str, source: str) -> str | None:
    """Why `key` may not be read as an entry, as a message saying what it is and what to do,
    or None where it may: a link (soft or external), which is its target's other name,
    never an entry of its own (smm-daq names sources by the entry's own name; one to
    nothing is left to the caller's "no entry"); what a
    killed writer left (`left_by_a_writer`), which `repair` settles; and anything else under
    the names smm-daq writes an entry under before it is whole."""
    link = link_in_the_way(f, key)
    if link is not None and resolves(f, key):  # a link to nothing: no entry there
        target = f.get(key, getlink=True)
        own = (f"read entry '{target.path.lstrip('/')}' by its own name"
               if isinstance(target, h5py.SoftLink) and entry_listed(f, target.path.lstrip("/"))
               else "an entry of this file")
        return (f"'{key}' is {link}, not an entry of its own; expected an entry's own name "
                f"(as `{command_line(['smm-daq', 'info', source])}` lists them): {own}")
    state = left_by_a_writer(f, key)
    if state is not None:
        info, repair = (command_line(["smm-daq", how, source]) for how in ("info", "repair"))
        return (f"{state}; expected an entry `{info}` lists: `{repair}` settles it (finishes "
                f"or undoes what was cut off), then read entry '{unstaged_name(key)}'")
    if unstaged_name(key) != key and _present(f, key):
        return (f"'{key}' lies under a name smm-daq keeps entry '{unstaged_name(key)}' under "
                "while writing or replacing it, and smm-daq did not put it there; expected an "
                "entry's own name: rename it with an HDF5 tool (h5py, HDFView) to read it")
    return None


def entry_listed(f: h5py.Group, key: str) -> bool:
    """`key` is an entry as listings show them: a group of the file's own (not a link) that
    is an NXentry and that `not_an_entry` lets be read (False for a path HDF5 cannot
    follow, through a link round in a loop)."""
    try:
        link = f.get(key, getlink=True)
    except (KeyError, RuntimeError, OSError):
        return False
    return (isinstance(link, h5py.HardLink)
            and isinstance(f[key], h5py.Group)
            and text(f[key].attrs.get("NX_class", "")) == "NXentry"
            and not_an_entry(f, key, "") is None)


def check_an_entry(f: h5py.Group, key: str, source: str) -> None:
    """InputError, for every reader of an entry by name, where `key` may not be read as one
    (`not_an_entry`), or is a link leading nowhere (`no_entry`): HDF5 raises a KeyError or
    RuntimeError for one, and a reader would end in a traceback."""
    refused = not_an_entry(f, key, source)
    if refused is None and link_in_the_way(f, key) is not None and not resolves(f, key):
        refused = no_entry(f, key)
    if refused is not None:
        raise InputError(refused, source=source)


def no_entry(f: h5py.Group, key: str, why: str = "") -> str:
    """"No entry `key`", with `why` (what else the name is) or the link leading nowhere that
    holds it, and the entries there are (`entry_listed`: never through a link)."""
    names = [k for k in f if entry_listed(f, k)]
    link = None if why else link_in_the_way(f, key)
    return (f"no entry '{key}'{why}{f' ({key!r} is {link})' if link else ''}"
            f"{other_form_note(names, key)}; expected "
            + ("one of " + ", ".join(repr(n) for n in names) if names
               else "an entry, but the file holds none"))
