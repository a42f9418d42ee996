"""The routes of the FHIR interface, under `/fhir/R4`."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs

from teleconsult.fhir.appointments import create, instance
from teleconsult.fhir.capability import capability_statement
from teleconsult.fhir.http import PREFIX, base_url, fhir_answer, fhir_errors, method_not_allowed
from teleconsult.fhir.outcome import outcome
from teleconsult.fhir.search import search


@docs(
    tags=["fhir"],
    operationId="fhirCapabilityStatement",
    summary="FHIR R4: what the interface supports",
    description=(
        "The FHIR R4 (4.0.1) interface under `/fhir/R4` serves teleconsultations as "
        "`Appointment` resources (`application/fhir+json`): create (conditional on "
        "`If-None-Exist: identifier=...`), read, update (PUT or JSON Patch), cancel and "
        "search. This CapabilityStatement describes it; its errors are OperationOutcomes. "
        "See the documentation's FHIR page for the mapping."
    ),
    responses={200: {"description": "The CapabilityStatement (`application/fhir+json`)."}},
)
async def metadata(request: web.Request) -> web.Response:
    return fhir_answer(capability_statement(base_url(request)))


async def appointments(request: web.Request) -> web.StreamResponse:
    if request.method == "POST":
        return await create(request)
    if request.method == "GET":
        return await search(request)
    return method_not_allowed(request, ("GET", "POST"))


async def no_route(request: web.Request) -> web.Response:
    message = (
        f"There is no route {request.method} {request.path}: this FHIR interface serves "
        f"{PREFIX}/metadata and {PREFIX}/Appointment only."
    )
    return fhir_answer(outcome(404, message, "no_route"), status=404)


def setup_routes(app: web.Application) -> None:
    """The FHIR routes; `metadata` is in the OpenAPI document, the rest in its statement."""
    app.router.add_get(f"{PREFIX}/metadata", fhir_errors(metadata), allow_head=False)
    app.router.add_route("*", f"{PREFIX}/Appointment", fhir_errors(appointments))
    app.router.add_route("*", f"{PREFIX}/Appointment/{{id}}", fhir_errors(instance))
    # Anything else under the prefix, but metadata's other methods: the API's 405 (documented).
    app.router.add_route("*", f"{PREFIX}/{{rest:(?!metadata$).*}}", fhir_errors(no_route))
