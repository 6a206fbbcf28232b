"""The MMT community's file formats: `community` (the cuboid library's scan text and
parameters), `mpe` (the multipole library's JSON + NPZ), `points` (x y z volume label lists),
`dragonfly` (micro-CT connected-components exports) and `grains` (one reader for every grain
file)."""
