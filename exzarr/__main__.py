"""``python -m exzarr``: the ``exzarr`` command line (see :mod:`exzarr.cli`)."""

import sys

from exzarr.cli import main

if __name__ == "__main__":
    sys.exit(main())
