"""Seed 001's parameter study on Dask: the grid of models (`grid`), running it (`run`), its
statistics (`stats`) and Figure 4/5-style plots (`plots`)."""
