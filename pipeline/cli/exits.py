"""How a ``vigil`` command ends: exit code 0 ok, 1 runtime error, 2 malformed input, 130 Ctrl-C;
every failure is one line on stderr, never a usage block or a traceback.

Typer's own runner prints a usage error as the usage, a hint and a box, and an unexpected exception
as a (rich) traceback; :func:`run_cli` runs the same command without that standalone handling.
``VIGIL_DEBUG=1`` lets an unexpected exception through with its traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

import typer

from pipeline.cli.common import err_console, error_line

DEBUG_ENV = "VIGIL_DEBUG"
# OSErrors that name a path the user gave (an output file in a missing folder, ...): malformed input.
_PATH_ERRNOS = {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EACCES, errno.EPERM, errno.EROFS}


def run_cli(app: typer.Typer, args: Sequence[str] | None = None) -> int:
    """Run ``app`` on ``args`` (default: the process's) and return its exit code."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors (exit 2) and its other errors (exit 1)
        return _usage_error(exc)
    except typer.Abort:
        return error_line("aborted", 1)
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        path_error = exc.filename is not None and exc.errno in _PATH_ERRNOS
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return error_line(f"{where}{exc.strerror or exc}", 2 if path_error else 1)
    except Exception as exc:  # the last resort: one line for the user; VIGIL_DEBUG=1 shows the traceback
        if os.environ.get(DEBUG_ENV):
            raise
        return error_line(f"{type(exc).__name__}: {exc} ({DEBUG_ENV}=1 shows the traceback)", 1)
    # Typer returns a command's typer.Exit code in this mode, and the command's return value (None) otherwise.
    return result if isinstance(result, int) else 0


def _usage_error(exc: typer.TyperException) -> int:
    message = exc.format_message()
    if type(exc).__name__ == "NoArgsIsHelpError":  # `vigil events`: the help, already printed where rich renders it
        if message.strip():
            err_console.print(message, highlight=False, markup=False)
        return exc.exit_code
    ctx = getattr(exc, "ctx", None)
    hint = f" (see {ctx.command_path} --help)" if ctx is not None else ""
    return error_line(f"{message}{hint}", exc.exit_code)
