"""`retu list`: every algorithm variant in the registry with its paper and status."""

from __future__ import annotations

import json

import typer


def list_variants(as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table.")) -> None:
    """List the registered advantages, per-token terms, aggregations, methods and algorithm presets."""
    from retu.algos.registry import list_variants as rows_of

    rows = rows_of()
    if as_json:
        typer.echo(json.dumps([r.__dict__ for r in rows]))
        return
    for r in rows:
        typer.echo(f"{r.kind:12} {r.name:22} {r.status:12} {r.paper}")


def register(app: typer.Typer) -> None:
    app.command("list")(list_variants)
