"""Settings read once, at startup, from the environment; passed explicitly after."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path


def account_name() -> str:
    """Who acts, as history and locks record it: ``LLMFLEET_USER`` if set, else the
    account of this process's uid. Not ``$USER``: cron, systemd and containers often
    leave it unset (history said "unknown" while the lock said "root"), and anyone
    can set it to anything."""
    override = os.environ.get("LLMFLEET_USER")
    if override:
        return override
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # a uid with no account (some containers)
        return f"uid {os.getuid()}"


@dataclass(frozen=True)
class Settings:
    """Where llmfleet keeps things.

    ``cache_dir`` holds what is shared by every project on this machine and is
    expensive to make (engine builds, model files); ``home`` holds one project's
    runtime (agent socket, replica logs, default SQLite state) next to its spec.
    """

    cache_dir: Path
    home: Path
    user: str

    @classmethod
    def from_env(cls, *, spec_dir: Path | None = None) -> Settings:
        cache = os.environ.get("LLMFLEET_CACHE") or os.environ.get("XDG_CACHE_HOME")
        cache_dir = (
            Path(cache) / "llmfleet" if cache and "LLMFLEET_CACHE" not in os.environ else None
        )
        if "LLMFLEET_CACHE" in os.environ:
            cache_dir = Path(os.environ["LLMFLEET_CACHE"])
        if cache_dir is None:
            cache_dir = Path.home() / ".cache" / "llmfleet"
        home_env = os.environ.get("LLMFLEET_HOME")
        home = Path(home_env) if home_env else (spec_dir or Path.cwd()) / ".llmfleet"
        user = account_name()
        return cls(cache_dir=cache_dir.resolve(), home=home.resolve(), user=user)

    @property
    def engines_dir(self) -> Path:
        return self.cache_dir / "engines"

    @property
    def models_dir(self) -> Path:
        return self.cache_dir / "models"

    @property
    def wheels_dir(self) -> Path:
        return self.cache_dir / "wheels"
