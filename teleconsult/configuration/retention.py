"""How long what the service keeps is kept: cancelled and ended teleconsultations, audit
entries, finished webhook deliveries (the reconciler's retention pass deletes them)."""

from __future__ import annotations

from teleconsult.configuration.declarations import DeclaredSettings, WholeNumber, setting


class RetentionSettings(DeclaredSettings):
    trashed_days: WholeNumber = setting(
        "RETENTION_TRASHED_DAYS",
        30,
        "days after its cancellation that a cancelled teleconsultation is deleted for good (by the "
        "reconciler's retention pass); `0` deletes it at the next pass",
        minimum=0,
        maximum=36500,
    )
    ended_days: WholeNumber | None = setting(
        "RETENTION_ENDED_DAYS",
        None,
        "days after its end that a teleconsultation is deleted for good; unset keeps them",
        minimum=0,
        maximum=36500,
    )
    audit_days: WholeNumber = setting(
        "AUDIT_RETENTION_DAYS",
        365,
        "how long audit-trail entries (links and credentials handed out, changes) are kept",
        minimum=1,
        maximum=36500,
    )
    webhook_days: WholeNumber = setting(
        "WEBHOOK_RETENTION_DAYS",
        30,
        "days after it finished that a webhook delivery (its payload: ids, states, times, provider "
        "user ids) is deleted for good by the retention pass: a failed one stays that long for "
        "`POST /webhooks/failed/{id}/retry`; a delivered or withdrawn one goes after "
        "`WEBHOOK_MAX_AGE_MS` if that is shorter",
        minimum=1,
        maximum=36500,
    )
