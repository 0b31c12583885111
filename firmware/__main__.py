"""`python -m legsleeve` runs the command line."""

import sys

from legsleeve.cli import main

sys.exit(main())
