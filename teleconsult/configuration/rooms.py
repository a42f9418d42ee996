"""The rooms teleconsultations get, when links are handed out, and how often replicas look
for work (room jobs left over, changes made by other replicas)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from teleconsult.configuration.declarations import (
    DAY_MS,
    Boolean,
    DeclaredSettings,
    WholeNumber,
    setting,
)
from teleconsult.core.domain import RoomPolicy

MAX_IMMUTABLE_PERIOD_MS = 30 * DAY_MS
"""Thirty days: a window longer than that is a typo (and would overflow date arithmetic)."""


class RoomSettings(DeclaredSettings):
    unlimited: Boolean = setting(
        "UNLIMITED_TELECONSULTATION",
        True,
        "rooms without a duration; `false` gives rooms `end_date - start_date` (300 s to 24 h)",
    )
    live: Boolean = setting(
        "LIVE_TELECONSULTATION",
        True,
        "the call ends when fewer than two participants remain (passed to the provider)",
    )
    immutable_period_ms: WholeNumber = setting(
        "IMMUTABLE_PERIOD_MS",
        0,
        "the immutable window: how long before `start_date` a complete teleconsultation locks and "
        "links are handed out",
        minimum=0,
        maximum=MAX_IMMUTABLE_PERIOD_MS,
    )
    delete_uploads: Boolean = setting(
        "TELECONSULTATION_DELETE_UPLOADS",
        False,
        "`DELETE /teleconsultation/{roomId}/uploads` really deletes the room's files (else it "
        "answers 204 and does nothing)",
    )
    default_recording_type: Literal["none", "manual", "automatic"] = setting(
        "DEFAULT_RECORDING_TYPE", "none", "`none`, `manual` or `automatic`, passed to new rooms"
    )
    no_show_after_ms: WholeNumber = setting(
        "NO_SHOW_AFTER_MS",
        600_000,
        "a participant who has not joined the call this long after `start_date` is reported by "
        "a `call.no_show` event: ten minutes",
        minimum=0,
        maximum=DAY_MS,
    )
    reconcile_interval_ms: WholeNumber = setting(
        "RECONCILE_INTERVAL_MS",
        10000,
        "how often each replica's reconciler looks for room work left over (orphan rooms to "
        "delete); `0` turns it off",
        minimum=0,
        maximum=3_600_000,
    )
    wait_refresh_ms: WholeNumber = setting(
        "WAIT_REFRESH_MS",
        1000,
        "while `GET ?waitSeconds=` requests wait, how often each replica reads the versions of "
        "their teleconsultations (one query for all) to see changes made by other replicas; "
        "its own changes and lock times wake them at once",
        minimum=10,
        maximum=60_000,
    )

    @property
    def policy(self) -> RoomPolicy:
        return RoomPolicy(
            unlimited=self.unlimited,
            live=self.live,
            recording=self.default_recording_type,
            immutable_period=timedelta(milliseconds=self.immutable_period_ms),
        )
