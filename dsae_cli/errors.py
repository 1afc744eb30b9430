"""One error type for everything a user can get wrong, and the guard that turns it into one line.

Commands raise :class:`DsaeError` with a message that says what is wrong *and what to do*;
:func:`cli_errors` prints it as a single ``error: ...`` line and exits non-zero. Any other
exception is reported the same way (no traceback) unless ``dsae --debug`` was given.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager

# set by the app callback (``dsae --debug ...``)
DEBUG = False


class DsaeError(Exception):
    """A problem the user can fix: bad input, bad option, unusable checkpoint."""


@contextmanager
def cli_errors():
    import typer

    try:
        yield
    except typer.Exit:
        raise
    except DsaeError as err:
        if DEBUG:
            raise
        print(f"error: {err}", file=sys.stderr)
        raise typer.Exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        raise typer.Exit(130)
    except MemoryError:
        print("error: out of memory; try a smaller --batch-size or a smaller input", file=sys.stderr)
        raise typer.Exit(1)
    except Exception as err:  # noqa: BLE001 - last line of defence: never show a traceback
        if DEBUG:
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(
            f"error: unexpected {type(err).__name__}: {msg} (rerun with `dsae --debug ...` for the traceback"
            " and report it)",
            file=sys.stderr,
        )
        raise typer.Exit(1)
