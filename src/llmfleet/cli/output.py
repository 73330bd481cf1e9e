"""The CLI's two consoles: answers on stdout, errors on stderr.

Every command module prints through these two objects. A rich ``Console`` reads
the terminal and the environment (``NO_COLOR``, ``COLUMNS``, whether stdout is a
tty) when it is made; the command server (``llmfleet.cli.server``) runs each
command in a process forked long after import, with another user's terminal
and environment, so it calls ``reset()`` to make them read both again.
"""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)


def reset() -> None:
    """Read the terminal and environment again (same objects: importers keep theirs)."""
    console.__init__(highlight=False)  # type: ignore[misc]
    errors.__init__(stderr=True, highlight=False)  # type: ignore[misc]
