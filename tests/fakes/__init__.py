"""In-process stand-ins of vendors' servers, for the tests and `make bench`: never shipped."""
