"""The CLI's two consoles: answers on stdout, errors on stderr.

Every command module prints through these two objects.
"""

from __future__ import annotations

from rich.console import Console

console = Console(highlight=False)
errors = Console(stderr=True, highlight=False)
