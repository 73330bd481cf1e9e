"""Where the local runtime keeps its files inside the project's home (``.llmfleet``)."""

from __future__ import annotations

SOCKET_NAME = "agent.sock"
STATE_NAME = "agent-state.json"
AGENT_LOG_NAME = "agent.log"
LOGS_FOLDER = "logs"
