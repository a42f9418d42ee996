"""The FHIR R4 interface (`/fhir/R4`): which group each kind of FHIR actor joins as."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from teleconsult.configuration.declarations import BaseUrl, DeclaredSettings, setting

ACTOR_TYPES = ("Practitioner", "PractitionerRole", "Patient", "RelatedPerson")
"""The R4 resource types an Appointment participant's actor may be that stand for a person."""
DEFAULT_ACTOR_GROUPS = (
    "Practitioner:doctor,PractitionerRole:doctor,Patient:patient,RelatedPerson:patient"
)


def actor_groups(value: str) -> str:
    """`Type:group` pairs, comma-separated: every actor type once, each with one group."""
    pairs = parse_actor_groups(value)
    missing = [kind for kind in ACTOR_TYPES if kind not in pairs]
    if missing:
        raise ValueError(f"must give a group to every actor type; {', '.join(missing)} has none.")
    return ",".join(f"{kind}:{pairs[kind]}" for kind in ACTOR_TYPES)


def parse_actor_groups(value: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        kind, _, group = (piece.strip() for piece in item.partition(":"))
        if kind not in ACTOR_TYPES or not group:
            raise ValueError(
                f"must be Type:group pairs with a Type among {', '.join(ACTOR_TYPES)}; "
                f"got {item!r}."
            )
        if kind in pairs:
            raise ValueError(f"names {kind} twice.")
        pairs[kind] = group
    return pairs


ActorGroups = Annotated[str, AfterValidator(actor_groups)]


class FhirSettings(DeclaredSettings):
    actor_groups: ActorGroups = setting(
        "FHIR_ACTOR_GROUPS",
        DEFAULT_ACTOR_GROUPS,
        "with the static identity provider, the group a FHIR Appointment participant joins as, by "
        "the type of its actor (`Type:group`, comma-separated, every type once); with an identity "
        "provider that knows the users (auth0), groups come from it and this is not read",
    )

    base_url: BaseUrl | None = setting(
        "FHIR_BASE_URL",
        None,
        "the FHIR interface's base as clients reach it (`https://api.example.org/fhir/R4`, behind "
        "a gateway), for `Location`, `fullUrl` and `next` links; unset: the request's own scheme, "
        "`Host` and `/fhir/R4`",
    )

    def groups_by_actor(self) -> dict[str, str]:
        return parse_actor_groups(self.actor_groups)
