"""The FHIR R4 interface under `/fhir/R4`: teleconsultations as Appointments.

A view on the same service as the API (its store, identity, rules, events, audit and
listing), not a second model: `mapping` turns Appointments into the service's inputs and
records into Appointments (pure functions), `r4` says what valid R4 is for what we serve,
`outcome` writes errors as OperationOutcomes. docs/fhir.md has the mapping table.
"""
