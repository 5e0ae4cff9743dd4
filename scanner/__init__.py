"""The engine: CLI, inventory, policy, runner, evaluation, store, and the plugin contract."""
