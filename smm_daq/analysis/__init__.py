"""Analysis: forward model, maps, Fourier tools, susceptibility and micromagnetic tomography."""
