"""One module per ``heatmon`` subcommand; each defines ``register(subparsers)``."""
