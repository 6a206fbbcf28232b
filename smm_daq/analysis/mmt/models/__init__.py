"""Grain models of MMT: the Green's matrix that maps grain unknowns to the sensors' readings
(`cuboid`: uniformly magnetized grains built of cuboids; `multipole`: point sources expanded
as dipole, quadrupole or octupole, with the generated closed forms in `multipole_kernels`)."""
