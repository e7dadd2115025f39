"""The `emodistill` command line: one subcommand module per pipeline stage."""
