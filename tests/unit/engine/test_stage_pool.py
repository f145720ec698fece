"""retu.stage_pool on stand-in stages (each writes what it saw and a run_end record): the order of
waves, stages side by side, skipping finished stages, the solo stage in this process, failures."""

import json
import os
import time
from functools import partial
from pathlib import Path

import pytest

from retu.errors import RetuInputError
from retu.stage_pool import Stage, run_stages
from retu.stages import DEFAULT_SFT, stage_config


def stand_in(cfg, *, progress: bool, seconds: float = 0.0, fail: str = "") -> None:
    """A stage: sleeps, then records its pid, threads, progress and times, and ends its run ok."""
    import torch

    start = time.time()
    if fail:
        raise RetuInputError(fail)
    time.sleep(seconds)
    run = Path(cfg.log.run_dir)
    run.mkdir(parents=True, exist_ok=True)
    seen = {"pid": os.getpid(), "threads": torch.get_num_threads(), "progress": progress, "start": start,
            "end": time.time()}
    (run / "seen.json").write_text(json.dumps(seen))
    (run / "metrics.jsonl").write_text(json.dumps({"v": 1, "kind": "run_end", "status": "ok"}) + "\n")


def stage(root: Path, name: str, **kwargs) -> Stage:
    cfg = stage_config(None, DEFAULT_SFT, [f"log.run_dir={root / name}"])
    return Stage(cfg, partial(stand_in, **kwargs), f"stage {name}")


def seen(root: Path, name: str) -> dict:
    return json.loads((root / name / "seen.json").read_text())


def chain(*waves):
    yield from waves


def test_one_worker_runs_every_stage_here_in_order(tmp_path):
    lines = []
    run_stages([chain([stage(tmp_path, "a")], [stage(tmp_path, "b")]), chain([stage(tmp_path, "c")])],
               echo=lines.append, progress=False)
    assert lines == ["stage a", "stage b", "stage c"]
    assert {seen(tmp_path, n)["pid"] for n in "abc"} == {os.getpid()}
    assert seen(tmp_path, "a")["end"] <= seen(tmp_path, "b")["start"] <= seen(tmp_path, "c")["start"]
    again = []
    run_stages([chain([stage(tmp_path, "a")], [stage(tmp_path, "b")])], echo=again.append)
    assert again == ["stage a (done)", "stage b (done)"]


def test_two_workers_run_two_chains_side_by_side_and_keep_each_chains_waves_in_order(tmp_path):
    lines = []
    run_stages([chain([stage(tmp_path, "a1", seconds=1.0)], [stage(tmp_path, "a2")]),
                chain([stage(tmp_path, "b1", seconds=1.0)], [stage(tmp_path, "b2")])],
               workers=2, echo=lines.append, progress=True)
    a1, a2, b1, b2 = (seen(tmp_path, n) for n in ("a1", "a2", "b1", "b2"))
    assert a1["start"] < b1["end"] and b1["start"] < a1["end"]  # side by side
    assert a2["start"] >= a1["end"] and b2["start"] >= b1["end"]  # a chain's next wave waits for its last
    assert len({a1["pid"], b1["pid"], os.getpid()}) == 3
    import torch

    assert a1["threads"] == b1["threads"] == max(1, torch.get_num_threads() // 2)
    assert not a1["progress"] and not b1["progress"]  # workers show no bars; the pool prints a line each
    assert "stage a1 (worker, " in "\n".join(lines) and any(line.startswith("stage b1: finished in ") for line in lines)


def test_the_only_ready_stage_runs_here_with_every_thread_and_its_bar(tmp_path):
    import torch

    run_stages([chain([stage(tmp_path, "sft")], [stage(tmp_path, "rl1"), stage(tmp_path, "rl2")])], workers=2,
               echo=lambda _: None)
    sft, rl1 = seen(tmp_path, "sft"), seen(tmp_path, "rl1")
    assert (sft["pid"], sft["threads"], sft["progress"]) == (os.getpid(), torch.get_num_threads(), True)
    assert rl1["pid"] != os.getpid() and not rl1["progress"]


def test_a_failing_worker_stage_is_raised_here_and_stops_the_rest(tmp_path):
    with pytest.raises(RetuInputError, match="^x.yaml: bad value$"):
        run_stages([chain([stage(tmp_path, "bad", fail="x.yaml: bad value")], [stage(tmp_path, "after")]),
                    chain([stage(tmp_path, "slow", seconds=30.0)])], workers=2, echo=lambda _: None)
    assert not (tmp_path / "after").exists() and not (tmp_path / "slow" / "seen.json").exists()
