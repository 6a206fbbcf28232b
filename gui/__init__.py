"""The smm-daq desktop application (PyQt6 + pyqtgraph)."""
