"""Where the local runtime keeps its files inside the project's home (``.llmfleet``)."""

from __future__ import annotations

SOCKET_NAME = "agent.sock"
STATE_NAME = "agent-state.json"
AGENT_LOG_NAME = "agent.log"
AGENT_LOCK_NAME = "agent.lock"
"""Held by the agent serving the home, so that a home has one agent."""
LOGS_FOLDER = "logs"
