"""Micromagnetic tomography (seed 001).

`models` (Green's matrices of the grain models), `solver` (the blocked QR inversion with
uncertainties and per-grain statistics), `tiles` (tiled inversion on Dask), `study` (the
seed's parameter study), `formats` (the MMT community's files) and `synth` (synthetic
samples).
"""
