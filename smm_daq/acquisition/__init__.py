"""Acquisition: scan plans, the sequencer, session files and recipes."""
