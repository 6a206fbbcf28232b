"""smm-daq: acquisition and analysis for a scanning magnetic microscope."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("smm-daq")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

PROGRAM_NAME = "smm-daq"
