"""MMT beyond one machine: tiled inversion on Dask.

`layout` (tiles, windows, ownership), `margin` (the margin rule), `cutoff` (which outside
grains can be skipped), `factor` (one tile's QR factor and its solves), `tiled` (the tiled
inversion) and `cluster` (Dask client and tasks with progress).
"""
