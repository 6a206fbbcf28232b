"""What a grain model's arrays take, from the counts of grains and cuboids alone: known
before the model is built, so that a memory check can come before any of the work.

The arrays are those the GPU kernels upload (`cuboid_gpu.DeviceGreen`,
`multipole_gpu.DeviceMultipole`) and a `cuboid.GreenModel` holds with its grains' cuboids.
"""

from __future__ import annotations

from smm_daq.analysis.mmt.models.cuboid import HIGHER_ORDERS

# centroid 3, volume, second moments 6, orders 3 and 4 (`_orders_3_4`) 25, the coarse and far
# switches, the switches of orders 4 to 10 (4); and the index of its first cuboid
CUBOID_PER_GRAIN = 42
# the coefficients of orders 5 to 12 (`_grain_orders`): three columns of the monomials of
# degree n + 2 for each order n; none for the exact model
HIGHER_PER_GRAIN = 3 * sum((n + 3) * (n + 4) // 2 for n in HIGHER_ORDERS)
# centre and edges 6, half-edges 3, the quadrupole switch and scale, the order-6 and -10
# switches (2 + 2); and, under an area sensor, the order-4 to -10 terms of cuboid ⊗ sensor (52)
PER_CUBOID = 13
AREA_PER_CUBOID = 52
MULTIPOLE_PER_GRAIN = 4  # centroid and volume


def cuboid_model_bytes(n_grains: int, n_cuboids: int, *, area: bool, exact: bool) -> int:
    """Bytes of a cuboid model's arrays for these counts, an area sensor or a point one."""
    per_grain = CUBOID_PER_GRAIN + (0 if exact else HIGHER_PER_GRAIN)
    per_cuboid = PER_CUBOID + (AREA_PER_CUBOID if area else 0)
    return 8 * (n_grains * per_grain + 1 + n_cuboids * per_cuboid)


def multipole_model_bytes(n_grains: int) -> int:
    """Bytes of a multipole model's grains on the device."""
    return 8 * MULTIPOLE_PER_GRAIN * n_grains
