"""attt: information-security compliance scanner for a province's registered systems.

`attt.scanner` is the engine, `attt.checks` the built-in check plugins, `attt.reports` the
renderers and `attt.policies` the bundled policy files; `attt.plugin` is what a third-party
check imports.
"""


def __getattr__(name: str) -> str:
    """`attt.__version__`, read from the installed package's metadata when first asked for: the
    import of `importlib.metadata` and the look through the installed distributions took 0.07 s,
    paid before anything else by every `attt` process (the scan's store process included)."""
    if name != "__version__":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("attt-scanner")
    except PackageNotFoundError:  # running from a source tree that was never installed
        found = "0.0.0+source"
    globals()["__version__"] = found
    return found
