"""The `synthstream` command. Each subcommand builds its inputs, runs one function, and reports.

Bad input (UserError) becomes one line on stderr and exit status 2, a failed run (RunFailed) one line and
exit status 1, an interrupt exit status 130; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys

from synthstream.commands import COMMANDS
from synthstream.errors import RunFailed, Stopped, UserError


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (`synthstream train: error: ...`) and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every module in `synthstream.commands.COMMANDS` registers its subcommand."""
    parser = Parser(prog="synthstream", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        args.func(args)
    except UserError as e:
        print(f"synthstream: error: {e}", file=sys.stderr)
        return 2
    except RunFailed as e:
        print(f"synthstream: error: {e}", file=sys.stderr)
        return 1
    except Stopped as e:
        print(f"synthstream: {e}", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("synthstream: interrupted", file=sys.stderr)
        return 130
    finally:
        from cluster.local import exit_quietly_on_sigterm

        exit_quietly_on_sigterm()
    return 0


if __name__ == "__main__":
    sys.exit(main())
