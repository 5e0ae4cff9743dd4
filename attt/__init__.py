"""attt: information-security compliance scanner for a province's registered systems.

`attt.scanner` is the engine, `attt.checks` the built-in check plugins, `attt.reports` the
renderers and `attt.policies` the bundled policy files; `attt.plugin` is what a third-party
check imports.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("attt-scanner")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
