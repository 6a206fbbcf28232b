"""MMT beyond one machine: tiled inversion and seed 001's parameter study on Dask.

`layout` (tiles, windows, ownership), `margin` (the margin rule), `tiled` (the tiled
inversion), `cluster` (Dask client and tasks with progress), `study_grid`, `study_stats`,
`study_plots` and `study` (the parameter study).
"""
