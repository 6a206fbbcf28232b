"""Instrument interfaces, transports, profiles and the rig factory (no driver names here)."""
