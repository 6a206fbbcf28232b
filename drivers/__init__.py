"""Real-instrument drivers speaking each instrument's wire protocol through a `Transport`."""
