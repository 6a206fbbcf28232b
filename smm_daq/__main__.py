"""`python -m smm_daq`: the `smm-daq` command, for a Python whose scripts folder is not on the
PATH (a virtual environment not activated, Windows' Store Python)."""

import sys

from smm_daq.cli.main import main

sys.exit(main())
