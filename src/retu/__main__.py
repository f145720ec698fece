"""`python -m retu` runs the CLI."""

from retu.cli import main

main()
