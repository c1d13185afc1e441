"""Test harnesses: multi-host clusters in network namespaces, a two-raylet cluster. Not part of the installed
packages; run from the repository root, e.g. `python -m tests.helpers.two_raylets`."""
