"""`retu report`: rebuild report.md, figures and tables from one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    runs: list[Path] = typer.Argument(..., help="Run directories (searched recursively for metrics.jsonl)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: <first run dir>/report)."),
) -> None:
    """Write report.md with the decomposition table, sub-phases, fits, correlation and figures."""
    from retu.report.build import build_report, write_report

    result = build_report(runs)
    path = write_report(result, out or Path(runs[0]) / "report")
    typer.echo(f"wrote {path}")
    for table in result.tables:
        typer.echo(table.summary())


def register(app: typer.Typer) -> None:
    app.command("report")(report)
