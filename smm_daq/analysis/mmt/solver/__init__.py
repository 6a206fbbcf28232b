"""The MMT solve: blocked QR inversion with covariance (`inversion`), several scans and any
grain model at once (`joint`), per-grain statistics, the uncertainty ratio and the signal
strength ratio (`stats`), and the test of higher multipole orders (`higher_order`)."""
