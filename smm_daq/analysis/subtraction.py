"""The induced map: an in-field scan minus the zero-field (remanent) scan of the same sample,
after registering the remanent scan onto the in-field one (seed 000: B_induced = B_in-field −
B_rem). Registration estimates the shift from the maps themselves (`registration.py`), so a
remount or a stage that did not return exactly to its origin does not leave dipole-shaped
ghosts of every grain in the difference.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from smm_daq.analysis.registration import (
    Registration,
    RegistrationNote,
    RegistrationWarning,
    apply_registration,
    estimate_registration,
    registration_concerns,
    registration_notes,
    require_alike,
    require_determined,
    shift_is_significant,
)
from smm_daq.analysis.subtract_inputs import induced_footprint, require_subtractable
from smm_daq.storage.mapdata import MapData
from smm_daq.storage.products import Quantity


@dataclass(frozen=True)
class SubtractionResult:
    map: MapData  # in-field minus registered remanent, on the in-field grid, NaN off the overlap
    # (dx, dy) m applied to the remanent map: the registration's, or zero where that is not
    # significantly different from zero (unless forced) or not determined
    shift: tuple[float, float]
    shift_sd: tuple[float, float]  # m
    registered: bool
    rotation: float = 0.0  # rad applied to the remanent map (only if asked and determined)
    rotation_sd: float = 0.0
    registration: Registration | None = None  # the full fit, when registered
    concerns: tuple[str, ...] = ()  # why the shift applied may be an artefact (also warned)
    notes: tuple[str, ...] = ()  # a shift found and left out, as expected (also said)
    # the two maps' applied fields (T; None where one records none), and whether they were
    # induced maps: what the map's own field was made from (`difference_field`)
    in_field_field: np.ndarray | None = None
    remanent_field: np.ndarray | None = None
    of_induced: bool = False


def registration_fields(res: SubtractionResult) -> dict[str, object]:
    """What the induced entry's `registration` NXprocess records, each with its unit."""
    fields: dict[str, object] = {
        "registered": np.uint8(res.registered),
        "shift": Quantity(np.array(res.shift), "m", "shift (dx, dy) applied to the remanent map"),
        "shift_errors": Quantity(np.array(res.shift_sd), "m", "standard deviation of the shift"),
    }
    if res.registration is not None:
        fields["shift_found"] = Quantity(
            np.array(res.registration.shift), "m",
            "shift (dx, dy) the registration found (applied only where significantly "
            "different from zero, or forced; where it determined none, its errors NaN: where "
            "its fit stopped, not applied)")
        fields["rotation"] = Quantity(res.rotation, "rad", "rotation applied to the remanent map")
        fields["rotation_errors"] = Quantity(res.rotation_sd, "rad")
        fields["offset"] = Quantity(res.registration.offset, "T",
                                    "constant between the maps (in-field minus remanent)")
        fields["rms_residual"] = Quantity(res.registration.rms_residual, "T")
        fields["pixels"] = res.registration.pixels
        fields["shift_correlation"] = Quantity(
            res.registration.shift_correlation, "1",
            "correlation of the shift's x and y errors (its significance counts it)"
            if not res.registration.by_sds_alone else
            "correlation of the shift's x and y errors, as estimated (its significance "
            "decided by its SDs alone, not counting it: see by_sds_alone)")
        if res.registration.by_sds_alone:
            fields["by_sds_alone"] = np.uint8(1)
        fields["noise_shift_errors"] = Quantity(
            np.array(res.registration.noise_shift_sd), "m",
            "standard deviation of the shift from the residual alone (its autocovariance, "
            "scaled by its variance over the noise's where larger)")
    if res.concerns:
        fields["warnings"] = "\n".join(res.concerns)
    if res.notes:
        fields["notes"] = "\n".join(res.notes)
    return fields


def subtract_maps(
    in_field: MapData,
    remanent: MapData,
    *,
    register: bool = True,
    name: str = "induced",
    rotation: bool = False,
    max_shift: float | None = None,
    apply_insignificant: bool = False,
    shift_as_begun: tuple[str, ...] = (),
    by_sds_alone: bool = False,
    induced: bool = False,
) -> SubtractionResult:
    """In-field minus remanent, the remanent map first carried onto the in-field one.

    The result keeps the in-field map's geometry and names both entries as its sources. Its
    applied field is the difference of the two maps' fields (`difference_field`: the response
    held is to a − b, a remanent scan in −a doubling it), or the in-field one's where they are
    induced maps (`induced`) or the remanent one records none. InputError if the grids differ or
    the sensor geometry disagrees. A shift found not significantly different from zero
    (`shift_is_significant`) is not applied (a zero shift; a rotation fitted is) unless
    `apply_insignificant`: it would move the map by an unknown amount. A RegistrationWarning for
    each reason the shift found may be an artefact (`registration_concerns`), saying whether it
    was applied; a RegistrationNote where it was left out as expected (`registration_notes`).
    `by_sds_alone` decides the significance by the shift's SDs alone, as a release before the
    correlation of its errors was counted did (a recipe begun with one, continued): the
    correlation is taken as zero in it, and recorded as estimated, beside a flag saying it was
    not counted. A registration that determined no shift (`Registration.undetermined`) applies
    none, said as a warning, and is titled so (`registered_title`); with `apply_insignificant`,
    InputError: there is no shift to force; InputError too where the two maps' RMS then differ a
    thousandfold (`require_alike`).

    `shift_as_begun` names a recipe's subtractions written by a release that applied every
    shift found (a recipe begun with one, continued): a shift not significantly different
    from zero is applied as they applied theirs, so that one recipe's subtractions are made
    alike. Unlike `apply_insignificant` (the user's own force) it asks for nothing that may
    be missing: a shift not determined is left out as by default, the warning saying that
    those subtractions applied theirs.
    """
    require_subtractable(in_field, remanent)
    if register:
        reg = estimate_registration(in_field, remanent, rotation=rotation, max_shift=max_shift)
        if by_sds_alone:
            reg = replace(reg, by_sds_alone=True)
        require_alike(reg, in_field, remanent)
        if apply_insignificant:
            require_determined(reg)
        applied = (replace(reg, shift=(0.0, 0.0), rotation=0.0) if reg.undetermined
                   else reg if apply_insignificant or shift_as_begun or shift_is_significant(reg)
                   else replace(reg, shift=(0.0, 0.0)))
        moved = (remanent if applied.shift == (0.0, 0.0) and applied.rotation == 0.0
                 else apply_registration(remanent, applied))
    else:
        reg = None
        moved = remanent
    bz = in_field.bz - moved.bz
    title = f"{in_field.name or 'in-field'} − {remanent.name or 'remanent'}"
    footprint = induced_footprint(name, in_field, remanent, induced=induced)
    out = in_field.with_bz(
        bz,
        name=name,
        title=title + registered_title(reg, moved=moved is not remanent),
        sources=(in_field.name, remanent.name),
        height=footprint.height,
        sensor_size=footprint.sensor_size,
        applied_field=footprint.applied_field,
    )
    fields = {"in_field_field": in_field.applied_field,
              "remanent_field": remanent.applied_field, "of_induced": induced}
    if reg is None:
        return SubtractionResult(out, (0.0, 0.0), (0.0, 0.0), False, **fields)
    step = (float(in_field.x[1] - in_field.x[0]), float(in_field.y[1] - in_field.y[0]))
    notes = tuple(registration_notes(reg, step, insignificant_applied=applied is reg))
    concerns = tuple(registration_concerns(reg, step, insignificant_applied=applied is reg))
    if reg.undetermined and shift_as_begun:
        concerns = tuple(text + _none_as_begun(shift_as_begun) for text in concerns)
    for text in notes:
        warnings.warn(f"'{title}': {text}", RegistrationNote, stacklevel=2)
    for text in concerns:
        warnings.warn(f"'{title}': {text}", RegistrationWarning, stacklevel=2)
    return SubtractionResult(
        out, applied.shift, reg.shift_sd, True, applied.rotation, reg.rotation_sd, reg, concerns,
        notes, **fields)


def insignificant_shift_applied(res: SubtractionResult) -> bool:
    """Whether subtraction `res` applied a shift its registration determined and found not
    significantly different from zero (forced, or as a recipe was begun): not where it was
    not registered, determined no shift, or found a significant one."""
    reg = res.registration
    return (reg is not None and not reg.undetermined and not shift_is_significant(reg)
            and res.shift == reg.shift)


def registered_title(reg: Registration | None, *, moved: bool) -> str:
    """What an induced entry's title says, after its two maps' names, of how they were
    subtracted, as it is plotted: " (registered)" where the registration `moved` the
    remanent map; " (registered: no shift applied)" where the shift it found was left out;
    " (not registered: no shift determined)" where it determined none (the maps subtracted
    as they lie); nothing where they were not registered."""
    if reg is None:
        return ""
    if reg.undetermined:
        return " (not registered: no shift determined)"
    return " (registered)" if moved else " (registered: no shift applied)"


def _none_as_begun(names: tuple[str, ...]) -> str:
    """Said after a shift not determined, in a subtraction applying one whatever its
    significance only as the recipe's subtractions `names` did (`shift_as_begun`)."""
    return (f"; this recipe's earlier subtractions ({', '.join(repr(n) for n in names)}) "
            "applied their shifts whatever their significance (written by a release that "
            "applied every shift found), but here there is none to apply")
