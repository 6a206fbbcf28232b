"""Grain models of MMT: the Green's matrix that maps grain magnetizations to the sensors'
readings (`cuboid`: uniformly magnetized grains built of cuboids)."""
