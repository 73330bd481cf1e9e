"""The environment an engine process runs with: a fixed base plus what the spec and
the install say, and nothing else.

The local agent is started by whichever ``llmfleet`` command runs first, so its own
environment is an accident of that shell: an exported ``LLAMA_ARG_*`` there would
reach every replica until ``llmfleet down``, and the spec would no longer say how
its replicas run. Engines are started with ``engine_environment`` instead.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping

BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def engine_environment(env: Mapping[str, str]) -> dict[str, str]:
    """A fixed base (``PATH``, ``HOME``, ``USER``, ``LOGNAME``, ``LANG``), then ``env``
    (the install's recorded settings, then the spec's ``engine.env``)."""
    user = pwd.getpwuid(os.getuid())
    base = {
        "PATH": BASE_PATH,
        "HOME": user.pw_dir,
        "USER": user.pw_name,
        "LOGNAME": user.pw_name,
        "LANG": "C.UTF-8",
    }
    return {**base, **env}
