"""Command-line flags derived from a config's option fields (trainer/config.py declares them, once)."""

from __future__ import annotations

import argparse

from synthstream import argtypes


def add_config_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per option field of `cls` (`trainer.config.option`): `--batch-size` for batch_size, with the
    field's help, default, choices and argument type (a name in synthstream.argtypes). The parsed value's name is the
    flag's (`args.resource_wait` for resource_wait_s)."""
    from trainer.config import flag_of, option_type, options

    for f in options(cls):
        if not f.metadata["cli"]:
            continue
        flag, dest, kind = flag_of(f), _dest(f), option_type(f)
        if kind is bool:
            parser.add_argument(flag, dest=dest, action="store_true", help=f.metadata["help"])
            continue
        name = f.metadata["parse"]
        by_type = {int: argtypes.int_range(-(2**63)), float: argtypes.finite_float, str: str}
        parse = getattr(argtypes, name) if name else by_type[kind]
        parser.add_argument(flag, dest=dest, type=parse, default=f.default, metavar=f.metadata["metavar"],
                            choices=f.metadata["choices"], help=f.metadata["help"])


def config_from_args(args: argparse.Namespace, cls: type, **given):
    """The config of parsed flags (see add_config_flags); `given` adds or replaces values."""
    from trainer.config import options

    values = {f.name: getattr(args, _dest(f)) for f in options(cls) if f.metadata["cli"]}
    return cls(**{**values, **given})


def _dest(f) -> str:
    return (f.metadata["flag"] or f.name).replace("-", "_")
