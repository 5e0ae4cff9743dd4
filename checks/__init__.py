"""Built-in check plugins. Each registers through the `attt.checks` entry-point group."""
