"""The `steadymail` command line (Typer, Rich)."""
