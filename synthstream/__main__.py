"""`python -m synthstream ...` runs the `synthstream` command."""

from synthstream.cli import entry

entry()
