"""One log format: the metrics.jsonl writer and the readers that turn any training log into a Series.

Record schema (STYLE.md section 4), one JSON object a line:
    {"v": 1, "run_id": str, "kind": "run_start|train|eval|fit|phase|event|run_end", "step": int,
     "t": unix seconds, "tokens": cumulative tokens, "flops": cumulative FLOPs, "metrics": {...}}
Metric names are `group/name[/stat]` with group one of GROUPS. A missing or non-finite value is
written as null and an `event` record says which; it is never written as 0.

Readers (`read_series`) accept a retu metrics.jsonl (or a flat JSONL log), a TensorBoard event directory
or file, an HF `trainer_state.json` (its `log_history`) or a CSV export (e.g. W&B), and return the same
`Series`.
This module imports numpy only (no torch), so analysis commands start fast.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from retu.errors import RetuInputError, read_json, read_text, where

SCHEMA_VERSION = 1
KINDS = ("run_start", "train", "eval", "fit", "phase", "event", "run_end")
GROUPS = ("loss", "policy", "reward", "completion", "eval", "optim", "perf", "fit")

# Names a validation loss goes by in the logs retu reads, most specific first.
VAL_LOSS_NAMES = ("loss/val", "eval/loss", "eval_loss", "val/loss", "val_loss", "validation_loss")
# Names of the step column in CSV exports and flat JSONL logs, in the order they are looked for.
STEP_COLUMNS = ("step", "_step", "global_step", "train/global_step")


# ---------------------------------------------------------------------------------------------------
# Writer


def _finite_or_none(value: object) -> tuple[object, bool]:
    """Return (json-safe value, was_bad) where non-finite floats become None."""
    if value is None:
        return None, True
    if isinstance(value, bool | int | str):
        return value, False
    try:
        as_float = float(value)  # numpy / torch scalars
    except (TypeError, ValueError):
        return value, False
    return (as_float, False) if math.isfinite(as_float) else (None, True)


def _drop_torn_tail(path: Path) -> None:
    """Cut a half-written last line (a kill mid-write) off `path`, so appended records start on a line of
    their own; the complete lines before it stay as they are."""
    if not path.is_file():
        return
    with open(path, "rb+") as fh:
        data = fh.read()
        if data and not data.endswith(b"\n"):
            fh.truncate(data.rfind(b"\n") + 1)


class JsonlLogger:
    """Append-only metrics.jsonl writer, flushed and fsynced per record.

    A restarted run calls `rewind(step)` with its checkpoint's step before logging again, so records
    written after that checkpoint (the work a kill lost) are dropped instead of duplicated.

    >>> import tempfile, json
    >>> p = Path(tempfile.mkdtemp()) / "metrics.jsonl"
    >>> log = JsonlLogger(p, run_id="demo")
    >>> log.log("train", step=1, tokens=10, flops=2e9, metrics={"loss/total": float("nan")})
    >>> [json.loads(l)["kind"] for l in p.read_text().splitlines()]
    ['train', 'event']
    """

    def __init__(self, path: str | os.PathLike, run_id: str, mirrors: tuple = ()):
        self.path = Path(path)
        self.run_id = run_id
        self.mirrors = mirrors  # callables (kind, step, flat_metrics) -> None, e.g. TensorBoard
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(self.path)

    def log(self, kind: str, *, step: int | None = None, tokens: float | None = None,
            flops: float | None = None, metrics: dict | None = None, **extra) -> None:
        """Write one record; non-finite metric values become null plus an `event` record."""
        if kind not in KINDS:
            raise ValueError(f"unknown record kind {kind!r}; valid: {', '.join(KINDS)}")
        clean, bad = {}, []
        for name, value in (metrics or {}).items():
            clean[name], was_bad = _finite_or_none(value)
            if was_bad:
                bad.append(name)
        record = {"v": SCHEMA_VERSION, "run_id": self.run_id, "kind": kind, "step": step,
                  "t": round(time.time(), 3), "tokens": tokens, "flops": flops, "metrics": clean}
        record.update(extra)
        self._write(record)
        if bad:
            self._write({"v": SCHEMA_VERSION, "run_id": self.run_id, "kind": "event", "step": step,
                         "t": round(time.time(), 3), "event": "non_finite", "names": bad})
        for mirror in self.mirrors:
            mirror(kind, step, {k: v for k, v in clean.items() if isinstance(v, float | int)})

    def _write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, allow_nan=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def records(self) -> list[dict]:
        """All records written so far (empty if the file does not exist)."""
        return read_records(self.path) if self.path.exists() else []

    def rewind(self, step: int) -> int:
        """Drop records with a step after `step` (and a trailing run_end); return how many.

        The file is rewritten to a temporary name and renamed, so a kill during rewind loses nothing.
        """
        if not self.path.exists():
            return 0
        keep, dropped = [], 0
        for rec in read_records(self.path):
            late = rec.get("step") is not None and rec["step"] > step
            if late or rec.get("kind") == "run_end":
                dropped += 1
            else:
                keep.append(rec)
        if dropped:
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in keep), encoding="utf-8")
            os.replace(tmp, self.path)
        return dropped


def read_records(path: str | os.PathLike) -> list[dict]:
    """Parse a metrics.jsonl; a torn last line (kill mid-write) is ignored, any other bad line raises."""
    path = Path(path)
    lines = read_text(path).splitlines()
    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if lineno == len(lines):
                break
            raise RetuInputError(f"{where(path, lineno)}: not valid JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise RetuInputError(f"{where(path, lineno)}: a record must be a JSON object")
        records.append(rec)
    return records


# ---------------------------------------------------------------------------------------------------
# Series and readers


@dataclass(frozen=True)
class Series:
    """One metric over training: values at steps, with cumulative tokens/FLOPs where logged.

    Attributes:
        source: file or directory it was read from.
        name: metric name as found in the source.
        step: [N] int64 training steps (sorted, unique).
        value: [N] float64 values, all finite.
        flops: [N] cumulative FLOPs or None when the source has no compute axis.
        tokens: [N] cumulative tokens or None.
        n_dropped: rows whose value was missing or non-finite (dropped, never zero-filled).
    """

    source: str
    name: str
    step: np.ndarray
    value: np.ndarray
    flops: np.ndarray | None = None
    tokens: np.ndarray | None = None
    n_dropped: int = 0
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.value)



def run_start(path: str | Path) -> dict:
    """The first run_start record of a metrics.jsonl ({} when it has none)."""
    return next((r for r in read_records(path) if r.get("kind") == "run_start"), {})


def run_end_status(path: str | Path) -> str | None:
    """The status of a metrics.jsonl's last run_end record ("ok", "pruned", ...); None when it has none
    (or the file does not exist)."""
    path = Path(path)
    ends = [r for r in read_records(path) if r.get("kind") == "run_end"] if path.exists() else []
    return ends[-1].get("status") if ends else None


def _to_float(value: object) -> float:
    try:
        return float(value) if value not in (None, "") else math.nan
    except (TypeError, ValueError):
        return math.nan


def _build_series(source: Path, name: str, rows: list[tuple]) -> Series:
    """rows: (step, value, flops|None, tokens|None). Drops non-finite values; sorts; last step wins."""
    if not rows:
        raise RetuInputError(f"{source}: no rows with metric '{name}'")
    by_step: dict[int, tuple] = {}
    dropped = 0
    for step, value, flops, tokens in rows:
        value = _to_float(value)
        if step is None or not math.isfinite(value):
            dropped += 1
            continue
        by_step[int(step)] = (value, _to_float(flops), _to_float(tokens))
    if not by_step:
        raise RetuInputError(f"{source}: metric '{name}' has no finite values ({dropped} rows dropped)")
    steps = np.array(sorted(by_step), dtype=np.int64)
    cols = np.array([by_step[s] for s in steps], dtype=np.float64)
    flops = cols[:, 1] if np.isfinite(cols[:, 1]).all() else None
    tokens = cols[:, 2] if np.isfinite(cols[:, 2]).all() else None
    return Series(str(source), name, steps, cols[:, 0], flops, tokens, dropped)


def _pick_name(source: Path, available: set[str], metric: str | None) -> str:
    if metric is not None:
        if metric not in available:
            listed = ", ".join(sorted(available)[:12]) or "none"
            raise RetuInputError(f"{source}: no metric '{metric}' (found: {listed})")
        return metric
    for name in VAL_LOSS_NAMES:
        if name in available:
            return name
    raise RetuInputError(f"{source}: no validation loss found (looked for {', '.join(VAL_LOSS_NAMES)}); "
                         "pass the metric name")


def _flat_record(rec: dict) -> dict:
    """A flat log line `{"step": 10, "val/loss": 0.52, ...}` as a retu record."""
    step = next((rec[c] for c in STEP_COLUMNS if c in rec), None)
    metrics = {k: v for k, v in rec.items() if k not in (*STEP_COLUMNS, "flops", "tokens")}
    return {"kind": "train", "step": step, "flops": rec.get("flops"), "tokens": rec.get("tokens"), "metrics": metrics}


def read_metrics_jsonl(path: Path, metric: str | None = None) -> Series:
    """Read one metric from a JSONL log: retu's records (train and eval) or the flat lines many loggers
    write, `{"step": 10, "val/loss": 0.52}` (a step column of STEP_COLUMNS, every other key a metric)."""
    records = read_records(path)
    if not any("metrics" in r for r in records):
        records = [_flat_record(r) for r in records]
    records = [r for r in records if r.get("kind") in ("train", "eval")]
    available = {k for r in records for k in (r.get("metrics") or {})}
    name = _pick_name(path, available, metric)
    rows = [(r.get("step"), r["metrics"][name], r.get("flops"), r.get("tokens"))
            for r in records if name in (r.get("metrics") or {})]
    return _build_series(path, name, rows)


def read_trainer_state(path: Path, metric: str | None = None) -> Series:
    """Read one metric from an HF Trainer `trainer_state.json` (log_history entries)."""
    state = read_json(path)
    history = state.get("log_history") if isinstance(state, dict) else None
    if not isinstance(history, list):
        raise RetuInputError(f"{path}: no 'log_history' list (not a trainer_state.json?)")
    available = {k for entry in history for k in entry}
    name = _pick_name(path, available, metric)
    rows = [(e.get("step"), e[name], e.get("total_flos"), e.get("num_input_tokens_seen"))
            for e in history if name in e]
    return _build_series(path, name, rows)


def read_csv(path: Path, metric: str | None = None) -> Series:
    """Read one column of a CSV export (W&B style: a step column `_step`, `step` or `global_step`)."""
    reader = csv.DictReader(io.StringIO(read_text(path), newline=""))
    header = set(reader.fieldnames or [])
    step_col = next((c for c in STEP_COLUMNS if c in header), None)
    if step_col is None:
        raise RetuInputError(f"{path}: no step column (need one of {', '.join(STEP_COLUMNS)})")
    name = _pick_name(path, header - {step_col}, metric)
    rows = []
    for r in reader:
        step = _to_float(r[step_col])
        if r[step_col] not in ("", None) and not math.isfinite(step):
            raise RetuInputError(f"{where(path, reader.line_num)}: step {r[step_col]!r} is not a number")
        rows.append((int(step) if math.isfinite(step) else None, r[name], r.get("flops"), r.get("tokens")))
    return _build_series(path, name, rows)


def read_tensorboard(path: Path, metric: str | None = None) -> Series:
    """Read one scalar tag from TensorBoard event files (a run directory or one events file)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags().get("scalars", []))
    if not tags:
        raise RetuInputError(f"{path}: no TensorBoard scalars found")
    name = _pick_name(path, tags, metric)
    rows = [(e.step, e.value, None, None) for e in acc.Scalars(name)]
    return _build_series(path, name, rows)


def read_series(path: str | os.PathLike, metric: str | None = None) -> Series:
    """Read a metric (default: the validation loss) from any supported log format.

    Args:
        path: metrics.jsonl, run directory (holding metrics.jsonl), trainer_state.json, *.csv, or a
            TensorBoard event file / directory of them.
        metric: metric name; None looks for a validation loss under the names in VAL_LOSS_NAMES.
    """
    path = Path(path)
    if not path.exists():
        raise RetuInputError(f"{path}: file not found")
    if path.is_dir():
        if (path / "metrics.jsonl").exists():
            return read_metrics_jsonl(path / "metrics.jsonl", metric)
        if (path / "trainer_state.json").exists():
            return read_trainer_state(path / "trainer_state.json", metric)
        if any(p.name.startswith("events.out.tfevents") for p in path.rglob("events.out.tfevents*")):
            return read_tensorboard(path, metric)
        raise RetuInputError(f"{path}: directory holds no metrics.jsonl, trainer_state.json or TensorBoard events")
    if path.name.startswith("events.out.tfevents"):
        return read_tensorboard(path, metric)
    if path.suffix == ".csv":
        return read_csv(path, metric)
    if path.suffix == ".jsonl":
        return read_metrics_jsonl(path, metric)
    if path.suffix == ".json":
        return read_trainer_state(path, metric)
    raise RetuInputError(f"{path}: unknown log format (expected .jsonl, .json, .csv or TensorBoard events)")
