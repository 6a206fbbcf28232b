"""The `smm-daq` command line. Each area registers its sub-commands through an entry point."""
