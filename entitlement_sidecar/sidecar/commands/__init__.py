"""Sidecar subcommands (`run`, `register`, `check`): one module each, imported only when used."""
