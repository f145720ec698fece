"""Two CPU processes (torchrun, gloo) train what one process trains: same batches, same numbers.

UPT with gate G turns every group into its expert row, so the trained tokens do not depend on what
was sampled: one process and two must log the same tokens, loss and gradient norm at every step
(the gradient averaged over processes equals the one-process gradient only with the loss scaled as
`RetuGRPOTrainer.compute_loss` does). DAPO_dc checks the gathered accumulator (whole global batches)
and the shared-out evaluation against one process on the same model; a stand-in vLLM server client
checks that server-mode evaluation answers every process through the main one.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rl_setup import EVAL, make_config, warm_model  # noqa: F401 (warm_model is a fixture)

from conftest import write_jsonl

from retu.metrics import read_records

pytestmark = pytest.mark.integration


ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def command(kind: str, config: Path, run_dir: Path, processes: int, *overrides: str) -> list[str]:
    """`retu <kind>` in one process, or under torchrun in `processes` CPU processes."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    return [*(launcher if processes > 1 else [sys.executable]), "-m", "retu", kind, str(config),
            f"log.run_dir={run_dir}", *overrides]


def launch(kind: str, config: Path, run_dir: Path, processes: int, *overrides: str) -> subprocess.CompletedProcess:
    done = subprocess.run(command(kind, config, run_dir, processes, *overrides), capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def records(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] == kind]


def test_two_processes_train_the_one_process_batches(tmp_path, warm_model):
    config = make_config(tmp_path, warm_model, loss={"algo": "upt"}, optim={"lr": 1e-3, "batch_size": 4, "max_steps": 2},
                         rollout={"group_size": 4, "upt_gate": 4, "updates_per_batch": 1},
                         eval={"every": 0, "max_new_tokens": 8}, log={"log_every": 1, "save_every": 0})
    one, two = tmp_path / "one", tmp_path / "two"
    launch("rl", config, one, 1)
    out = launch("rl", config, two, 2)
    assert out.stdout.count(f"{two}: step 2") == 1  # the main process reports, once
    a, b = records(one, "train"), records(two, "train")
    assert [r["step"] for r in b] == [1, 2]  # one record per step: only the main process writes
    for x, y in zip(a, b):
        assert y["tokens"] == x["tokens"] > 0
        assert y["metrics"]["policy/upt_sft_frac"] == 1.0 and y["metrics"]["perf/groups_kept"] == 4
        for key in ("loss/total", "optim/grad_norm"):
            assert y["metrics"][key] == pytest.approx(x["metrics"][key], rel=1e-5), key
    assert len(records(two, "run_end")) == 1 and records(two, "run_end")[0]["status"] == "ok"
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == ["step-2"]


def test_dapo_gathers_whole_batches_and_shares_the_evaluation(tmp_path, warm_model):
    # Five evaluation problems over two processes: shares of 3 and 2 (one filler answer, dropped).
    five = write_jsonl(tmp_path / "eval5.jsonl", [*EVAL, {"id": "e9", "problem": "Compute 9-2.", "answer": "7"}])
    config = make_config(tmp_path, warm_model, optim={"lr": 1e-3, "batch_size": 4, "max_steps": 2},
                         rollout={"group_size": 4, "gen_batch": 6, "max_gen_rounds": 3, "updates_per_batch": 1},
                         eval={"every": 1, "max_new_tokens": 8}, log={"log_every": 1, "save_every": 1})
    one, two = tmp_path / "one", tmp_path / "two"
    launch("rl", config, one, 1, f"data.eval={five}", "optim.max_steps=1")  # for its step-0 evaluation
    launch("rl", config, two, 2, f"data.eval={five}")
    train, evals = records(two, "train"), records(two, "eval")
    assert [r["step"] for r in train] == [1, 2] and [r["step"] for r in evals] == [0, 1, 2]
    for rec in train:
        m = rec["metrics"]
        assert m["perf/groups_kept"] == 4 or m["perf/partial_batch"] == 1.0  # the global target, not a share
        assert 0.0 < m["reward/mean"] < 1.0 and m["perf/gen_rounds"] >= 1
    assert train[0]["flops"] > 0 and train[1]["tokens"] > train[0]["tokens"] > 0
    # Greedy answers of the same model: the shared-out evaluation equals one process's.
    assert evals[0]["metrics"] == {**records(one, "eval")[0]["metrics"], "perf/eval_s": evals[0]["metrics"]["perf/eval_s"]}
    assert sorted(p.name for p in (two / "checkpoints").glob("step-*")) == ["step-1", "step-2"]


def test_two_process_rl_resumes_after_kill(tmp_path, warm_model):
    config = make_config(tmp_path, warm_model, optim={"lr": 1e-3, "batch_size": 4, "max_steps": 5},
                         rollout={"group_size": 4, "max_gen_rounds": 2, "updates_per_batch": 1},
                         eval={"every": 2, "max_new_tokens": 8}, log={"log_every": 1, "save_every": 1})
    run = tmp_path / "two"
    proc = subprocess.Popen(command("rl", config, run, 2), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=ENV, start_new_session=True)
    deadline = time.time() + 240
    while not (run / "checkpoints" / "step-2" / "retu_state.json").exists() and proc.poll() is None \
            and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both workers
    proc.wait()
    assert proc.returncode == -signal.SIGKILL  # killed mid-run, not finished
    launch("rl", config, run, 2)
    recs = read_records(run / "metrics.jsonl")
    assert [r["step"] for r in recs if r["kind"] == "train"] == [1, 2, 3, 4, 5]
    assert [r["step"] for r in recs if r["kind"] == "eval"] == [0, 2, 4, 5]
    assert [r["resume_step"] for r in recs if r["kind"] == "run_start"][-1] >= 2
    assert recs[-1]["kind"] == "run_end" and recs[-1]["status"] == "ok"
    flops = [r["flops"] for r in recs if r["kind"] == "train"]
    assert flops == sorted(flops) and flops[0] > 0


def test_two_process_sft_matches_one_process(tmp_path):
    overrides = ["model.name_or_path=tiny:1m", "optim.max_steps=4", "optim.batch_size=8", "sft.val_every=2",
                 "eval.every=4", "eval.max_new_tokens=8", "data.arith_n_train=64", "data.arith_n_val=16",
                 "data.arith_n_eval=9"]
    config = Path(__file__).parents[2] / "configs" / "tiny" / "sft.yaml"
    one, two = tmp_path / "one", tmp_path / "two"
    launch("sft", config, one, 1, *overrides)
    launch("sft", config, two, 2, *overrides)
    for kind in ("train", "eval"):
        a, b = records(one, kind), records(two, kind)
        assert [r["step"] for r in a] == [r["step"] for r in b]
        for x, y in zip(a, b):
            assert y["tokens"] == x["tokens"] and y["flops"] == pytest.approx(x["flops"])
            for key, value in x["metrics"].items():
                if key.startswith(("loss/", "eval/")):
                    assert y["metrics"][key] == pytest.approx(value, rel=1e-5), key


SERVER_WORKER = '''
import json, sys
from types import SimpleNamespace
from accelerate import PartialState
from retu.engine.generators import trainer_generate_fn

state = PartialState(cpu=True)
rank = state.process_index
seen = []

def client_generate(prompts, n, **kwargs):  # only the main process holds the client
    seen.append(list(prompts))
    return {"completion_ids": [[ord(c) for c in f"{p}-{k}"] for p in prompts for k in range(n)]}

decode = SimpleNamespace(batch_decode=lambda ids, **kw: ["".join(map(chr, x)) for x in ids])
client = SimpleNamespace(generate=client_generate) if state.is_main_process else None
engine = SimpleNamespace(mode="server", vllm_client=client)
trainer = SimpleNamespace(use_transformers_continuous_batching=False, vllm_generation=engine,
                          sync_vllm_weights=lambda: None, processing_class=decode, accelerator=state)
mine = [f"r{rank}p{i}" for i in range(rank + 1)]  # 1 prompt on rank 0, 2 on rank 1
out = trainer_generate_fn(trainer)(mine, max_new_tokens=4, samples=2, temperature=1.0)
json.dump({"out": out, "seen": seen}, open(sys.argv[1] + f".{rank}", "w"))
state.destroy_process_group()  # leave the group before exit, as retu's CLI does
'''


def test_server_mode_evaluation_answers_every_process_through_the_main_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(SERVER_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1))
    assert r0["seen"] == [["r0p0", "r1p0", "r1p1"]] and r1["seen"] == []  # one request, from the main process
    assert r0["out"] == [["r0p0-0", "r0p0-1"]]
    assert r1["out"] == [["r1p0-0", "r1p0-1"], ["r1p1-0", "r1p1-1"]]


EVAL_WORKER = '''
import json, sys
from accelerate import PartialState
from retu.engine.models import load_model
from retu.eval import evaluate, evaluate_distributed

state = PartialState(cpu=True)
_, tokenizer = load_model("tiny:1m")
rows = [{"id": i, "problem": f"Compute {i}+1.", "answer": str(i + 1 if i % 3 else i), "group": f"g{i % 2}"}
        for i in range(7)]

def answer(prompts, *, samples=1, **kwargs):  # right unless the gold was made wrong (i % 3 == 0)
    seen = [int(p.split("Compute ")[1].split("+")[0]) for p in prompts]
    return [[f"\\\\boxed{{{i + 1}}}"] * samples for i in seen]

shared = evaluate_distributed(None, tokenizer, rows, max_new_tokens=4, generate_fn=answer)
alone = evaluate(None, tokenizer, rows, max_new_tokens=4, generate_fn=answer)
json.dump({"shared": [shared.accuracy, shared.sizes, shared.overall, [r["id"] for r in shared.records]],
           "alone": [alone.accuracy, alone.sizes, alone.overall, [r["id"] for r in alone.records]]},
          open(sys.argv[1] + f".{state.process_index}", "w"))
state.destroy_process_group()
'''


def test_shared_out_evaluation_equals_one_process(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(EVAL_WORKER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(tmp_path / "out")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    for rank in (0, 1):  # 7 problems: shares of 4 and 3 (+1 filler answer, dropped)
        r = json.loads((tmp_path / f"out.{rank}").read_text())
        assert r["shared"] == r["alone"]
        assert r["shared"][1] == {"g0": 4, "g1": 3} and r["shared"][3] == list(range(7))
        assert r["shared"][2] == pytest.approx(100 * 4 / 7)  # ids 1, 2, 4, 5 right; 0, 3, 6 wrong

