"""The `synthstream` command. Each subcommand builds its inputs, runs one function, and reports.

Bad input (UserError) becomes one line on stderr and exit status 2, a failed run (RunFailed) one line and
exit status 1, an interrupt exit status 130; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from synthstream.commands import COMMANDS
from synthstream.errors import RunFailed, Stopped, UserError


class DefaultsFormatter(argparse.HelpFormatter):
    """`--help` shows each option's default (unless it has none, is a plain switch, or the help names it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        quiet = (action.default is None or action.default is False or action.default == argparse.SUPPRESS
                 or "default" in text or not action.option_strings)
        return text if quiet else f"{text} (default: %(default)s)".lstrip()


class Parser(argparse.ArgumentParser):
    """argparse, but a bad argument is one line (`synthstream train: error: ...`) and exit status 2, and every
    (sub)command's `--help` shows defaults (subparsers are made with this class, so each gets the formatter)."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every module in `synthstream.commands.COMMANDS` registers its subcommand."""
    parser = Parser(prog="synthstream", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml), or a note when running from a source tree."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("synthstream")
    except PackageNotFoundError:
        return "(not installed: pip install -e .)"


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


def entry() -> None:
    """The `synthstream` command (and `python -m synthstream`): main(), then exit with its status. After an
    interrupt it exits at once: Ray's exit handler would wait up to a minute for a GCS that Ctrl-C (sent to the
    whole process group) already ended; an embedded Ray's processes are ended by its watcher."""
    code = main()
    if code in (130, 143):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
