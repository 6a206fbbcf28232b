"""Micromagnetic tomography (seed 001).

`models` (Green's matrices of the grain models: cuboid grains, point-source multipoles),
`solver` (the blocked QR inversion with uncertainties, joint inversions of several scans and
per-grain statistics), `tiles` (tiled inversion on Dask), `study` (the seed's parameter study),
`formats` (the MMT community's files), `masks` (bad pixels), and `synth` / `synth_points`
(synthetic samples).
"""
