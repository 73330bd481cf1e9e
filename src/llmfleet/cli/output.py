"""The CLI's two consoles: answers on stdout, errors on stderr.

Every command module prints through these two objects, and both print data as it
is. Emoji codes are off: rich would turn ``fleet.yaml:100:7`` into ``fleet.yaml💯7``
and break every editor and CI parser of file:line:col. Markup is for our own words
only: data goes in as ``Text`` or through ``plain`` (a key spelt ``[/x]`` would
otherwise be a markup error, ``[bold]`` a style).

On a terminal rich wraps at the terminal's width. Anywhere else (a pipe, a CI log)
rich would assume 80 columns and cut table cells to ``prod…``; there the width is
unbounded unless ``COLUMNS`` says otherwise, so ids and paths come out whole.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape

UNBOUNDED = 100_000
"""Columns when not on a terminal: lines are as long as their content."""


def plain(data: object) -> str:
    """``data`` as text that markup leaves as written, for f-strings that also hold markup."""
    return escape(str(data))


def width_for(stream: TextIO, environ: dict[str, str] | os._Environ[str]) -> int | None:
    """The width to render at: the terminal's or COLUMNS (None: rich finds it), else unbounded."""
    if "COLUMNS" in environ:
        return None
    try:
        on_terminal = stream.isatty()
    except ValueError:  # a closed stream
        on_terminal = False
    return None if on_terminal else UNBOUNDED


def make_console(*, stderr: bool) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, highlight=False, emoji=False, width=width_for(stream, os.environ))


console = make_console(stderr=False)
errors = make_console(stderr=True)
