"""The exception types that the CLI turns into a single clear error line."""


class UserError(ValueError):
    """Bad input from the user: a style, a file, an argument. The message says what to do."""


class RunFailed(RuntimeError):
    """A run that started failed (a training, a stream); the message is one line saying what happened."""
