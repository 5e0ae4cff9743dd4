"""pytest fixtures: hostile and broken targets (filled in by the robustness work)."""
