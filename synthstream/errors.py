"""The exception types that the CLI turns into a single clear error line."""


class UserError(ValueError):
    """Bad input from the user: a style, a file, an argument. The message says what to do."""


class RunFailed(RuntimeError):
    """A run that started and then failed (training diverged, workers died past their restart budget): the
    CLI prints one line and exits 1."""
