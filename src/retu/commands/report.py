"""`retu report`: rebuild report.md, figures and tables from one or more run directories."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    runs: list[Path] = typer.Argument(..., help="Run directories (searched recursively for metrics.jsonl)."),
    out: Path = typer.Option(None, "--out", help="Output directory (default: <first run dir>/report)."),
) -> None:
    """Write report.md with the decomposition table, sub-phases, fits, correlation and figures; a
    `retu pipeline` directory also gets its Findings and paradigm comparison over all seeds."""
    from retu.report.build import build_report, write_report
    from retu.report.findings import Finding
    from retu.report.study import LAYOUT, build_study, write_study

    if len(runs) == 1 and (Path(runs[0]) / LAYOUT).exists():
        study = build_study(runs[0])
        path = write_study(study, out or Path(runs[0]) / "report")
        typer.echo(f"wrote {path}")
        for f in study.findings:
            typer.echo(f"{f.id}: {f.verdict if isinstance(f, Finding) else 'not tested (' + f.reason + ')'}")
        return
    result = build_report(runs)
    path = write_report(result, out or Path(runs[0]) / "report")
    typer.echo(f"wrote {path}")
    for table in result.tables:
        typer.echo(table.summary())


def register(app: typer.Typer) -> None:
    app.command("report")(report)
