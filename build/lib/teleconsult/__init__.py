"""teleconsult: a backend for video teleconsultations."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("teleconsult")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
