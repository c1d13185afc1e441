"""`python -m synthstream ...` runs the `synthstream` command."""

import sys

from synthstream.cli import main

sys.exit(main())
