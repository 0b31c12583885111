"""`python -m legsleeve` runs the command line."""

import sys

from legsleeve.app.cli import main

sys.exit(main())
