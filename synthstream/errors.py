"""The exception types that the CLI turns into a single clear error line."""


class UserError(ValueError):
    """Bad input from the user: a style, a file, an argument. The message says what to do."""


class Stopped(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): exit status 143, one line."""


class RunFailed(RuntimeError):
    """A run that started and then failed (training diverged, workers died past their restart budget): the
    CLI prints one line and exits 1."""


def not_installed(what: str, file: str, package: str, style_name: str, path_variable: str) -> UserError:
    """The one message for a file a style needs that this machine lacks (a font, a word list)."""
    how = f"install the Debian package {package} (apt-get install {package})" if package else "install it"
    of = f" (style {style_name!r})" if style_name else ""
    return UserError(f"{what} {file!r}{of} not found: {how}, or put the file in a directory listed in "
                     f"{path_variable}")
