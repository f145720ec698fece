"""sft.padding_free changes how a micro-batch is laid out, not what is trained: the same train and
validation losses within float32 rounding (measured on these 2 CPU cores: at most 1.2e-7 relative,
most train losses bit-identical; the attention runs over one joined row with a block-diagonal mask
instead of a padded batch) and exactly the same token and FLOPs counts.
"""

import pytest

from retu.config import load_config
from retu.engine.sft import run_sft
from retu.metrics import read_records

pytestmark = pytest.mark.integration

# Two micro-batches of 4 rows of different lengths (1- and 3-step problems), so padding exists to remove.
CONFIG = """\
kind: sft
model: {name_or_path: "tiny:1m"}
data: {arith_n_train: 16, arith_n_val: 8, arith_n_eval: 8, arith_train_steps: [1, 3], arith_eval_steps: [1, 3]}
optim: {lr: 2.0e-3, batch_size: 8, grad_accum: 2, max_steps: 4}
sft: {val_every: 2}
eval: {every: 0, max_new_tokens: 2}
log: {log_every: 1, run_dir: unused}
"""


def _records(tmp_path, name: str, padding_free: bool) -> list[dict]:
    path = tmp_path / "sft.yaml"
    path.write_text(CONFIG)
    run_dir = tmp_path / name
    run_sft(load_config(path, [f"log.run_dir={run_dir}", f"sft.padding_free={padding_free}"]), progress=False)
    return [r for r in read_records(run_dir / "metrics.jsonl") if r["kind"] in ("train", "eval")]


def test_padding_free_keeps_losses_and_flops(tmp_path):
    padded, joined = _records(tmp_path, "padded", False), _records(tmp_path, "joined", True)
    assert [(r["kind"], r["step"]) for r in joined] == [(r["kind"], r["step"]) for r in padded]
    assert len(padded) == 4 + 3  # a train record per step, validation at steps 0, 2 and 4
    for a, b in zip(padded, joined, strict=True):
        assert (b["tokens"], b["flops"]) == (a["tokens"], a["flops"])  # the same sequences, counted exactly
        for name in ("loss/sft", "optim/grad_norm", "loss/val"):
            if name in a["metrics"]:
                assert b["metrics"][name] == pytest.approx(a["metrics"][name], rel=1e-6), (name, a["step"])
