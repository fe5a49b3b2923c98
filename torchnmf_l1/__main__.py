"""``python -m torchnmf_l1``: the command line (see :mod:`torchnmf_l1.cli`)."""

import sys

from .cli import main

sys.exit(main())
