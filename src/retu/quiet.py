"""Library output a retu user cannot act on, silenced in one place: by the CLI for every verb
(notices) and every training verb (bars), and by `retu.stage_pool`'s worker processes."""

from __future__ import annotations

import warnings


def ignore_library_notices() -> None:
    """Library notices repeated every RL step: TRL reads a property transformers deprecated, and the
    Trainer asks for pinned memory on a CPU-only machine."""
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.* is deprecated", category=FutureWarning)
    warnings.filterwarnings("ignore", message=".*'pin_memory' argument is set as true but no accelerator")


def quiet_library_bars() -> None:
    """Silence the bars datasets and transformers show for tokenizing, loading and checkpoint writing
    (a second each): the training bar is enough."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
