"""A grain file's refusals and an MMT inversion's, and their warnings, as the window says them.

The core names its options as the command line spells them (`--grain-format mmt`,
`--grains-shift-um`, `--sigma-nT`, ...): in the window, where the option is a control of its
own, that control is named as it is labelled (the grain format box, the Registration group,
the Dragonfly options, σ, Model, Save map image for a mask…), as `subtract_dialog.said_in_window`
does for a subtraction's warnings. Options the window has no control for are left as they are.
"""

from __future__ import annotations

import re

# each grain format the grain format boxes offer, as their tooltips say them
FORMATS_TIP = ("cuboids (csv): grain,x_um,y_um,z_um,dx_um,dy_um,dz_um; mmt: x y z hx hy hz "
               "grain (depth); points: x y z volume label (m); mpe: the multipole library's "
               "NPZ; dragonfly: a connected-components export, read with the MMT tab's options")

# (the command line's words, the window's), the longer phrases first: a phrase naming a key
# and its option ("z_top (--z-top-um)") before the option alone
_WORDS: tuple[tuple[str, str], ...] = (
    (r"\(--grain-format (\w+)\)", r"(choose \1 as the grain format)"),
    (r"use --grain-format (\w+)", r"choose \1 as the grain format"),
    (r"--grains-rotation-deg is", "the Registration's turn (then: turned) is"),
    (r"--model dipole, quadrupole or octupole", "Model dipole, quadrupole or octupole"),
    (r"--grains-shift-um's z", "the Registration's shift z"),
    (r"--grains-shift-um and --grains-rotation-deg",
     "the Registration's shift and turn (then: turned)"),
    (r"--grains-shift-um 0,0,-TOP", "the Registration's shift z at minus TOP"),
    (r"\(z_top, --z-top-um\)", "(the Dragonfly options' sample top)"),
    (r"expected --z-top-um with", "expected the Dragonfly options' sample top at"),
    (r"z_top \(--z-top-um\)", "the Dragonfly options' sample top"),
    (r"\(z_down, --z-down, is set\)", '("z axis points down" is ticked)'),
    (r"\(set z_down, --z-down, if", '(tick "z axis points down" if'),
    (r"\(min_voxels, --min-voxels\)", "(Dragonfly: min voxels)"),
    (r"\(--crop-magnetization-kA-per-m\)", "(the saturation box)"),
    (r"--crop-magnetization-kA-per-m is (\S+)", r"the saturation chosen is \1 kA/m"),
    (r"or no --crop-magnetization-kA-per-m", "or the saturation left at magnetite's 480 kA/m"),
    (r"no --sigma-nT", "σ from the residual"),
    (r"--crop-to-scan", '"only grains under the scan"'),
    (r"\(--sigma-nT, or Scan\.sigma\)", "(σ)"),
    (r"expected --sigma-nT", "expected σ typed"),
    (r"export --mask-template", 'the MMT tab\'s "Save map image for a mask…"'),
    (r"~fieldMask for --mask", "~fieldMask as the mask"),
)
_COMPILED = tuple((re.compile(pattern), window) for pattern, window in _WORDS)


def said_in_window(text: str) -> str:
    """`text` (a refusal or warning of grains or an inversion) with the command line's options
    named as the window's controls that set them."""
    for pattern, window in _COMPILED:
        text = pattern.sub(window, text)
    return text
