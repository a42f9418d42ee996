"""The test suite: through the HTTP API, the contracts, and unit tests of the pure rules."""
