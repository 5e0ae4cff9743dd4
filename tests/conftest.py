"""Session-wide pytest setup. Server fixtures live in tests/servers/, one module per kind."""

pytest_plugins = [
    "tests.servers.listeners",
    "tests.servers.tls",
    "tests.servers.sshd",
    "tests.servers.hostile",
]
