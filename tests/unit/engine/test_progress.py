"""The training progress bar on a narrow console: the bar gives way, the counts and numbers stay whole."""

from rich.console import Console
from rich.progress import Progress

from retu.engine.callbacks import RichProgress


def test_an_80_column_line_keeps_the_step_count_and_the_whole_status():
    status = "loss 0.0141  val 0.01914 overall 70.75 (Adaptive)"
    console = Console(width=80, force_terminal=False, color_system=None)
    bar = Progress(*RichProgress("sft arith").progress.columns, console=console, auto_refresh=False)
    bar.add_task("sft arith", total=700, completed=350, status=status)
    with console.capture() as out:
        console.print(bar.make_tasks_table(bar.tasks))
    (line,) = out.get().splitlines()
    assert line.startswith("sft arith ━") and line.endswith(f" 350/700 -:--:-- {status}") and len(line) <= 80, line
