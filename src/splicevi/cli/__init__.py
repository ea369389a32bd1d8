"""Command-line interface: one module per subcommand (see :mod:`splicevi.cli.main`)."""
