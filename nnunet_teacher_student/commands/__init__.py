"""One module per ``nnts`` subcommand; each defines ``register(subparsers)``."""
