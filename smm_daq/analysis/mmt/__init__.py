"""Micromagnetic tomography (seed 001): the blocked Green's matrix (`green`), the inversion
with uncertainties (`inversion`), per-grain statistics (`stats`), synthetic samples (`synth`)
and the MMT community's scan format (`community`)."""
