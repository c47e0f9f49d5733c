"""``python -m trendbotd``: the same entry point as the ``trendbotd`` console script."""

import sys

from trendbotd.cli import main

if __name__ == "__main__":
    sys.exit(int(main()))
