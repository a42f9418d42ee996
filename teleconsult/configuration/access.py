"""Who the caller is when tokens are not verified, who may do what, and idempotency keys."""

from __future__ import annotations

from teleconsult.configuration.declarations import (
    Boolean,
    DeclaredSettings,
    HeaderName,
    Names,
    WholeNumber,
    kept_for_a_day,
    setting,
)


class AccessSettings(DeclaredSettings):
    userid_header_key: HeaderName = setting(
        "USERID_HEADER_KEY",
        "miauserid",
        "the header that holds the caller's id (when `userIdPathInRequest` is not configured)",
    )
    groups_header_key: HeaderName = setting(
        "GROUPS_HEADER_KEY",
        "miausergroups",
        "the header with the caller's comma-separated groups, read for `MANAGER_GROUPS` when "
        "tokens are not verified",
    )
    manager_groups: Names = setting(
        "MANAGER_GROUPS",
        frozenset(),
        "comma-separated groups; when set, `POST`, `PATCH` and `DELETE` on teleconsultations need "
        "a caller in one of them (else 403); its members may also list anyone's teleconsultations "
        "and read audit trails (nobody may while it is unset)",
    )
    admin_groups: Names = setting(
        "ADMIN_GROUPS",
        frozenset(),
        "comma-separated groups whose members may change and cancel any teleconsultation; any "
        "other identified caller only those they created or take part in as a `plus` participant "
        "(else 403); only its identified members may make the operator calls (`/webhooks/failed`, "
        "`/settings/...`), and nobody while it is unset",
    )
    allow_anonymous_writes: Boolean = setting(
        "ALLOW_ANONYMOUS_WRITES",
        False,
        "`true`: callers who do not say who they are (no `miauserid`, no token) may create, change "
        "and cancel any teleconsultation, as with the original; only behind a gateway that "
        "authenticates every write but does not pass the caller on (README, migration notes)",
    )
    idempotency_key_ttl_ms: WholeNumber = kept_for_a_day(
        "IDEMPOTENCY_KEY_TTL_MS",
        "how long an `Idempotency-Key` (on `POST /teleconsultation` and `POST "
        ".../participants/data`) keeps its first answer: a day",
    )
    idempotency_max_keys_per_caller: WholeNumber = setting(
        "IDEMPOTENCY_MAX_KEYS_PER_CALLER",
        10000,
        "how many unexpired `Idempotency-Key`s one caller may hold; a keyed request beyond that is"
        " a 429 (callers who do not say who they are share one allowance)",
        minimum=1,
        maximum=10_000_000,
    )
