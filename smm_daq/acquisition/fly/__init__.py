"""Fly scans: lines scanned continuously, the lock-in sampled in time, the stage's recorded
positions interpolated, the filter lag removed and the samples binned into the plan's pixels
(`reconstruct`), and the noise such a pixel gets against the floor any scan must pay
(`noise`)."""
