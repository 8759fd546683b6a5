"""``python -m dotlib.reproduce studies/embedded.yaml [--only STEP ...] [--force] [--jobs N]``:
the command line of :mod:`dotlib.reproduce.command`, with its exit code."""

import sys

from .command import main

if __name__ == "__main__":
    sys.exit(main())
