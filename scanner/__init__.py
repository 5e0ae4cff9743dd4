"""attt: information-security compliance scanner for a province's registered systems."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("attt-scanner")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
