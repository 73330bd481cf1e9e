"""llmfleet: infrastructure as code for fleets of self-hosted LLM services."""

__version__ = "0.1.0"
