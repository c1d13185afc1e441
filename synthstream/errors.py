"""The exception types that the CLI turns into a single clear error line, and which errors a retry can fix."""

import errno
import os

# Storage errors that no restart, on this node or another, can fix: the run fails at once instead of spending
# its worker-restart budget on them.
STORAGE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)


class UserError(ValueError):
    """Bad input from the user: a style, a file, an argument. The message says what to do."""


class Stopped(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): exit status 143, one line."""


class RunFailed(RuntimeError):
    """A run that started and then failed (training diverged, workers died past their restart budget): the
    CLI prints one line and exits 1."""


def not_installed(what: str, file: str, package: str, style_name: str, path_variable: str,
                  module: str = "") -> UserError:
    """The one message for a file a style needs that this machine lacks (a font, a word list): from a Debian
    package, or from a Python package's files (`module`)."""
    how = (f"install the Python package {module} (pip install {module})" if module else
           f"install the Debian package {package} (apt-get install {package})" if package else "install it")
    of = f" (style {style_name!r})" if style_name else ""
    return UserError(f"{what} {file!r}{of} not found: {how}, or put the file in a directory listed in "
                     f"{path_variable}")


def out_of_space(e: OSError) -> bool:
    """A full disk or an exhausted quota."""
    return _has_errno(e, (errno.ENOSPC, errno.EDQUOT))


def deterministic(e: BaseException) -> bool:
    """An error the same run would meet again after a restart: bad input, or storage that refuses writes (full,
    read-only, no permission). Lost nodes and actors, and everything else, count as transient."""
    return isinstance(e, UserError) or (isinstance(e, OSError) and _has_errno(e, STORAGE_ERRNOS))


def _has_errno(e: OSError, numbers: tuple[int, ...]) -> bool:
    """By errno, or by its text: pyarrow's filesystems sometimes give the errno in the message only."""
    return any(e.errno == n or os.strerror(n) in str(e) for n in numbers)
