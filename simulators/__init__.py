"""One simulated physical world and protocol-level emulators of each instrument."""
