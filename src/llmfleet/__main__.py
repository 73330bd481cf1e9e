"""``python -m llmfleet`` is the ``llmfleet`` command."""

from llmfleet.cli.app import main

main()
