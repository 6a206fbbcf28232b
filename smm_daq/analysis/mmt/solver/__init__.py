"""The MMT solve: blocked QR inversion with covariance (`inversion`) and per-grain
statistics, the uncertainty ratio and the signal strength ratio (`stats`)."""
