"""``python -m geonorm.testing``: the equivariance-check CLI (see :mod:`geonorm.testing.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
