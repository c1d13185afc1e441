"""The CLI's subcommands, one module each: `register(subparsers)` adds the parser and
`set_defaults(func=run)`; `run(args)` is the command's body. Modules import heavy libraries inside `run`, so
building the parser (`synthstream --help`) stays fast."""

from synthstream.commands import bench, evaluate, export, fidelity, fit, infer, read, sample, serve, sweep, train

COMMANDS = (sample, train, sweep, infer, evaluate, export, serve, read, fidelity, fit, bench)
