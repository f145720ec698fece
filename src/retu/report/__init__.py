"""The report of a pipeline or comparison: evidence read from run directories, estimates with their
intervals, the paper's findings and their verdicts, the paradigm table, figures and report.md/json."""
