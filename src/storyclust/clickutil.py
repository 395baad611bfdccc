"""Small click helpers shared by every command module (cli.py, report/commands.py, tune_command.py)."""
from __future__ import annotations

import click

from .schema import parse_datetime
from .settings import parse_window

#: Where the verbosity chosen with -q/-v is kept (in the root context's ``meta``): -1, 0 or 1.
VERBOSITY = "storyclust.verbosity"


def env(name: str) -> str:
    """The environment variable that sets an option: ``STORYCLUST_<NAME>``."""
    return "STORYCLUST_" + name


def window_param(ctx, param, value):
    """click callback: a duration (3d, 36h, 90m, 1w) as a timedelta, or None."""
    if value is None:
        return None
    try:
        return parse_window(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def datetime_param(ctx, param, value):
    """click callback: an ISO 8601 date as an aware datetime, or None."""
    if value is None:
        return None
    when = parse_datetime(value)
    if when is None:
        raise click.BadParameter(f"not an ISO 8601 date: {value!r}")
    return when


def verbosity(ctx: click.Context) -> int:
    """-1 (quiet), 0 or 1 (verbose), as the user chose with -q/-v anywhere on the command line."""
    return ctx.find_root().meta.get(VERBOSITY, 0)
