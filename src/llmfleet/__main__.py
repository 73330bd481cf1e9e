"""``python -m llmfleet`` is the ``llmfleet`` command."""

from llmfleet.cli.launcher import main

main()
