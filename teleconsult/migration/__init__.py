"""Taking over the original service's MongoDB data (`teleconsult migrate`): `rules` converts
one document (pure), `runner` walks the collections with compare-and-sets, `command` is the
command line and its report. docs/operations.md, "Coming from the original service", is the
runbook."""
