"""pytest fixtures: real servers for tests (filled in by the check that needs them)."""
