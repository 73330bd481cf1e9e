"""Who did it: history and the lock name the same account, with or without $USER."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from llmfleet.settings import Settings
from llmfleet.state import StateStore


def test_history_and_lock_name_the_account_when_user_is_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """$USER, $LOGNAME unset (cron, containers, systemd): the account name from the uid,
    for the revision's user (settings) and the lock's holder alike; before, history
    said 'unknown' while the lock said 'root'."""
    for name in ("USER", "LOGNAME", "LNAME", "USERNAME", "LLMFLEET_USER"):
        monkeypatch.delenv(name, raising=False)
    account = pwd.getpwuid(os.getuid()).pw_name
    assert Settings.from_env(spec_dir=tmp_path).user == account
    with (
        StateStore.open("sqlite:///state.db", base_dir=tmp_path) as store,
        store.lock(purpose="apply production") as info,
    ):
        assert info.user == account


def test_llmfleet_user_names_both(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMFLEET_USER", "ci-bot")
    monkeypatch.setenv("USER", "someone-else")
    assert Settings.from_env(spec_dir=tmp_path).user == "ci-bot"
    with (
        StateStore.open("sqlite:///state.db", base_dir=tmp_path) as store,
        store.lock(purpose="apply production") as info,
    ):
        assert info.user == "ci-bot"
