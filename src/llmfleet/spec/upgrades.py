"""A service's ``upgrades:`` policy: which engine releases to follow, when; pure spec models.

The local agent carries the policy out (``releases.scheduling`` decides,
``releases.autoupgrade`` acts): it looks for new engine versions every
``check_every_s``, builds the newest one the policy follows in the background,
and validates and promotes it (or only proposes it) while the ``window`` is
open. Kept apart from ``spec.model`` like ``spec.validation``: the release
feature owns its schema, ``ServiceSpec`` only holds the field.
"""

from __future__ import annotations

import re
from datetime import time
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK_PATTERN = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"
MIN_CHECK_EVERY_S = 60.0


class _Frozen(BaseModel):
    # The same rules as spec.model.Frozen, repeated to avoid an import cycle.
    model_config = ConfigDict(extra="forbid", frozen=True)


class Follow(StrEnum):
    EVERY = "every"
    WEEKLY = "weekly"


class PromoteMode(StrEnum):
    AUTO = "auto"
    PROPOSE = "propose"


class Window(_Frozen):
    """When promotion may happen: the same hours on the listed days, in one time zone.

    ``end`` before ``start`` crosses midnight (``22:00``-``02:00`` on ``fri`` ends
    on Saturday at 02:00); ``days`` name the day a window opens."""

    days: tuple[Day, ...] = Field(default=DAYS, min_length=1, description="days it opens")
    start: str = Field(pattern=CLOCK_PATTERN, description="HH:MM, local time")
    end: str = Field(pattern=CLOCK_PATTERN, description="HH:MM, local time")
    time_zone: str = Field(default="UTC", description="IANA name, e.g. Europe/Berlin")

    @field_validator("time_zone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/Berlin or UTC"
            ) from None
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Window:
        if self.start == self.end:
            raise ValueError("start and end are equal: the window would never be open")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    @property
    def opens(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def closes(self) -> time:
        return time.fromisoformat(self.end)


class UpgradePolicy(_Frozen):
    """Which engine releases a production service follows, and how they reach it."""

    follow: Follow = Field(
        default=Follow.EVERY,
        description="every: each newer release; weekly: at most one upgrade a week",
    )
    match: str | None = Field(
        default=None,
        description="only versions this regular expression matches whole, e.g. '114[0-9]{2}\\..*'",
    )
    check_every_s: float = Field(
        default=6 * 3600.0,
        ge=MIN_CHECK_EVERY_S,
        description="how often the engine's releases are looked up",
    )
    window: Window | None = Field(
        default=None,
        description="when validation and promotion may run (they load production); "
        "left out: any time. Builds run any time, at low priority",
    )
    promote: PromoteMode = Field(
        default=PromoteMode.AUTO,
        description="auto: promote a passing candidate and edit the spec; propose: write the "
        "edited spec and the report for review, production untouched",
    )
    notify: bool = Field(default=True, description="post each outcome to observability.webhooks")

    @field_validator("match")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    def follows(self, version: str) -> bool:
        """Whether ``version`` is one the policy follows (``match``); pure."""
        return self.match is None or re.fullmatch(self.match, version) is not None
