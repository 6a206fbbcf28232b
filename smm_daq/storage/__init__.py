"""Session files: NeXus/HDF5 entries for scans and analysis products."""
