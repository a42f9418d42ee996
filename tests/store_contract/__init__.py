"""One contract, every store, one file per aggregate: a new backend is built and tested one
part at a time (records, the user map, the outbox, idempotency keys, health)."""
