"""`python -m retu` runs the CLI."""

from retu.cli import main

if __name__ == "__main__":  # not when a spawned worker process imports it (retu.stage_pool)
    main()
