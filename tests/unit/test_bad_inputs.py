"""Bad input at every entry point: one line naming the file, line or field, exit code 2, nothing written.

Each case runs `retu.cli.main` in-process (as the console script does) on files a user could hand it:
empty, truncated, binary, wrong-typed, negative and zero numbers, unknown keys, YAML tags that would run
code. The sweep of issue 14 found these; every new one found goes here.
"""

import json
import re
import sys

import pytest
from conftest import REPO_ROOT

from retu.cli import main

CONTROL_CHAR_YAML = "optim:\n  lr: 1e-3\x07\n"
CFG_AT = r"^configs/tiny/sft\.yaml: "  # a config error names the file it came through
UNSAFE_YAML = '!!python/object/apply:os.system ["touch {marker}"]\n'


def retu_error(monkeypatch, capsys, *args) -> str:
    """Run `retu ARGS`; assert exit code 2 with one stderr line; return that line without its prefix."""
    monkeypatch.setattr(sys, "argv", ["retu", *map(str, args)])
    with pytest.raises(SystemExit) as end:
        main()
    err = capsys.readouterr().err.strip()
    assert end.value.code == 2, err
    assert "\n" not in err and err.startswith("retu: error: "), err
    return err.removeprefix("retu: error: ")


def retu_ok(monkeypatch, capsys, *args) -> str:
    """Run `retu ARGS`; assert exit code 0; return stdout."""
    monkeypatch.setattr(sys, "argv", ["retu", *map(str, args)])
    with pytest.raises(SystemExit) as end:
        main()
    out = capsys.readouterr()
    assert not end.value.code, out.err
    return out.out


@pytest.fixture
def files(tmp_path):
    """Bad files by name (written on first use) in tmp_path."""
    contents = {
        "control.yaml": CONTROL_CHAR_YAML.encode(),
        "invalid.yaml": b"run_dir: runs/p\nbranches: [1, 2\n",
        "unsafe.yaml": UNSAFE_YAML.format(marker=tmp_path / "ran").encode(),
        "list.yaml": b"- optim\n- sft\n",
        "binary.yaml": b"\x89PNG\r\n\x1a\n\x00\x00",
        "latin1.jsonl": '{"problem": "Compute 1+1.", "answer": "2"}\n{"problem": "caf\xe9", "answer": "1"}\n'
                        .encode("latin-1"),
        "empty.jsonl": b"",
        "truncated.json": b'{"curves": [{"x": [1, 2], "y": ',
        "bad_step.csv": b"step,eval_loss\n10,0.5\nx,0.4\n",
        "flat_no_answer.jsonl": b'{"step": 10, "val/loss": 0.52}\n',
        "completions_str.jsonl": b'{"group": "g", "answer": "2", "completions": "2"}\n',
    }

    def get(name):
        path = tmp_path / name
        path.write_bytes(contents[name])
        return path
    return get


@pytest.mark.parametrize("args, message", [
    (("sft", "{control.yaml}"), r"control\.yaml:2: not valid YAML \(.*control character"),
    (("pipeline", "{invalid.yaml}"), r"invalid\.yaml:3: not valid YAML"),
    (("pipeline", "prune=maybe"), r"^pipeline: prune must be true or false, got 'maybe'$"),
    (("pipeline", "include_base=2"), r"^pipeline: include_base must be true or false, got 2$"),
    (("compare", "{invalid.yaml}"), r"invalid\.yaml:3: not valid YAML"),
    (("rl", "{unsafe.yaml}"), r"unsafe\.yaml:1: not valid YAML \(.*python/object/apply"),
    (("sft", "{list.yaml}"), r"list\.yaml: a run config must be a mapping of keys"),
    (("sft", "{binary.yaml}"), r"binary\.yaml: not UTF-8 text \(byte 0\)"),
    (("sft", "missing.yaml"), r"missing\.yaml: run config file not found"),
    (("data", "dedup", "{latin1.jsonl}", "--out", "{out}"), r"latin1\.jsonl:2: not UTF-8 text \(byte \d+\)"),
    (("data", "stats", "{empty.jsonl}"), r"empty\.jsonl: no rows \(the file is empty\)"),
    (("data", "dedup", "{empty.jsonl}", "--out", "{out}"), r"empty\.jsonl: no rows \(the file is empty\)"),
    (("data", "arith", "--out", "{out}", "--n-train", "0"), r"^--n-train must be >= 1, got 0$"),
    (("data", "arith", "--out", "{out}", "--n-val", "-1"), r"--n-val"),
    (("eval", "tiny:1m", "--limit", "-3"), r"^--limit must be >= 1, got -3$"),
    (("eval", "tiny:1m", "--limit", "0"), r"^--limit must be >= 1, got 0$"),
    (("eval", "tiny:1m", "--samples", "0"), r"^--samples must be >= 1, got 0$"),
    (("eval", "tiny:1m", "--top-p", "0"), r"^--top-p must be in \(0, 1\], got 0\.0$"),
    (("eval", "tiny:1m", "--temperature", "-1"), r"^--temperature must be >= 0, got -1\.0$"),
    (("eval", "--rescore", "{flat_no_answer.jsonl}"), r"flat_no_answer\.jsonl:1: missing field 'group'"),
    (("eval", "--rescore", "{completions_str.jsonl}"), r"completions_str\.jsonl:1: 'completions' must be a list"),
    (("eval", "--rescore", "{empty.jsonl}"), r"empty\.jsonl: no rows"),
    (("phases", "{bad_step.csv}"), r"bad_step\.csv:3: step 'x' is not a number"),
    (("phases", "{latin1.jsonl}"), r"latin1\.jsonl: not UTF-8 text"),
    (("fit", "{truncated.json}"), r"truncated\.json:1: not valid JSON"),
    (("flops", "--model", "qwen-9000", "--batch", "1", "--seq-len", "10"), r"qwen-9000"),
    (("flops", "--model", "Qwen2.5-7B", "--paradigm", "grpo", "--batch", "8", "--seq-len", "100",
      "--group-size", "0"), r"^group_size must be > 0, got 0$"),
    (("flops", "--model", "Qwen2.5-7B", "--paradigm", "dapo", "--batch", "8", "--seq-len", "100",
      "--gen-rounds", "0"), r"^gen_rounds must be > 0, got 0\.0$"),
    (("flops", "--model", "Qwen2.5-7B", "--paradigm", "upt", "--batch", "8", "--seq-len", "100",
      "--sft-fraction", "2"), r"^sft_fraction must be in \[0, 1\], got 2\.0$"),
    (("flops", "--model", "Qwen2.5-7B", "--batch", "0", "--seq-len", "100"), r"batch and seq_len must be positive"),
    (("sft", "configs/tiny/sft.yaml", "optim.lrr=1"), r"optim\.lrr"),
    (("sft", "configs/tiny/sft.yaml", "sft.val_every=0"), CFG_AT + r"sft\.val_every must be >= 1, got 0$"),
    (("sft", "configs/tiny/sft.yaml", "data.arith_n_train=-5"), CFG_AT + r"data\.arith_n_train must be >= 1, got -5$"),
    (("sft", "configs/tiny/sft.yaml", "eval.samples=0"), CFG_AT + r"eval\.samples must be >= 1, got 0$"),
    (("sft", "configs/tiny/sft.yaml", "log.log_every=0"), CFG_AT + r"log\.log_every must be >= 1, got 0$"),
    (("rl", "configs/tiny/rl_dapo_dc.yaml", "rollout.temperature=-1"),
     r"rl_dapo_dc\.yaml: rollout\.temperature must be > 0 \(rollouts are sampled\), got -1\.0$"),
    (("rl", "configs/tiny/rl_dapo_dc.yaml", "rollout.top_p=1.5"), r"rollout\.top_p must be in \(0, 1\], got 1\.5$"),
    (("rl", "configs/tiny/rl_dapo_dc.yaml", "rollout.updates_per_batch=0"), r"rollout\.updates_per_batch must be >= 1"),
    (("sft", "configs/tiny/sft.yaml", "optim"), r"override 'optim' must look like key=value"),
    # rules across sections fail at load, before the command reads a file (issue 13)
    (("sft", "configs/tiny/sft.yaml", "data.val=null", "data.train=rows.jsonl"),
     CFG_AT + r"data\.val is empty: SFT needs held-out expert trajectories for its validation loss "
              r"\(a JSONL path, or 'arith'\)$"),
    (("sft", "configs/tiny/sft.yaml", "log.report_to=mlflow"),
     CFG_AT + r"log\.report_to must be one of none, tensorboard, wandb, got 'mlflow'$"),
    (("rl", "configs/tiny/rl_luffy.yaml", "rollout.n_expert=8"),
     r"^configs/tiny/rl_luffy\.yaml: rollout\.n_expert \(8\) must be < rollout\.group_size \(8\) so each group "
     r"keeps at least one rollout$"),
    (("rl", "configs/tiny/rl_dapo_dc.yaml", "data.eval=null", "data.train=rows.jsonl"),
     r"^configs/tiny/rl_dapo_dc\.yaml: RL needs a held-out evaluation set: set data\.eval \(a JSONL path or "
     r"'arith'\)$"),
    (("rl", "configs/tiny/rl_dapo_dc.yaml", "loss.aggregation=seq_mean"),
     r"^configs/tiny/rl_dapo_dc\.yaml: loss\.aggregation must be one of token_mean, seq_mean_token_mean, "
     r"sum_over_lmax, got 'seq_mean'$"),
    # the shared training options parse on every training verb; the error is the config's, not the option's
    (("rl", "missing.yaml", "--no-progress"), r"missing\.yaml: run config file not found"),
    (("pipeline", "missing.yaml", "--no-progress"), r"missing\.yaml"),
    (("compare", "missing.yaml", "--no-progress"), r"missing\.yaml"),
    (("sft", "missing.yaml", "--no-progress"), r"missing\.yaml: run config file not found"),
])
def test_bad_input_gives_one_line_and_exit_2(files, tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(REPO_ROOT)
    names = {a[1:-1] for a in args if a.startswith("{") and a.endswith("}")}
    paths = {n: (tmp_path / "out" if n == "out" else files(n)) for n in names}
    argv = [paths[a[1:-1]] if a[1:-1] in paths else a for a in args]
    err = retu_error(monkeypatch, capsys, *argv)
    assert re.search(message, err), err
    assert not (tmp_path / "out").exists(), "bad input must write nothing"
    assert not (tmp_path / "ran").exists(), "a YAML tag ran code"


def test_flops_presets_match_case_insensitively(monkeypatch, capsys):
    exact = json.loads(retu_ok(monkeypatch, capsys, "flops", "--model", "Qwen2.5-7B", "--batch", 512,
                               "--seq-len", 3771, "--steps", 360, "--json"))
    lower = json.loads(retu_ok(monkeypatch, capsys, "flops", "--model", "qwen2.5-7b", "--batch", 512,
                               "--seq-len", 3771, "--steps", 360, "--json"))
    assert lower == exact and round(lower["run_eflops"], 2) == 34.92


def test_phases_reads_a_flat_jsonl_log(tmp_path, monkeypatch, capsys):
    losses = [0.90, 0.60, 0.45, 0.40, 0.41, 0.44, 0.52]
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps({"step": 10 * (i + 1), "val/loss": v, "train/loss": v - 0.1}) + "\n"
                           for i, v in enumerate(losses)))
    result = json.loads(retu_ok(monkeypatch, capsys, "phases", log, "--json"))
    assert result["L_min"] == pytest.approx(0.40)
    assert [c["step"] for c in result["checkpoints"]] == [10, 20, 30, 40, 50, 60, 70]
    assert [c["val_loss"] for c in result["checkpoints"]] == pytest.approx(losses)


def test_a_torn_last_line_is_ignored_and_cut_before_the_next_record(tmp_path, monkeypatch, capsys):
    from retu.metrics import JsonlLogger, read_records

    path = tmp_path / "metrics.jsonl"
    log = JsonlLogger(path, run_id="r")
    for step, loss in ((10, 0.9), (20, 0.6), (30, 0.5)):
        log.log("eval", step=step, metrics={"loss/val": loss})
    with open(path, "a") as fh:
        fh.write('{"v": 1, "run_id": "r", "kind": "eval", "step": 40, "metr')  # killed mid-write
    assert [r["step"] for r in read_records(path)] == [10, 20, 30]
    result = json.loads(retu_ok(monkeypatch, capsys, "phases", path, "--json"))
    assert [c["step"] for c in result["checkpoints"]] == [10, 20, 30]

    JsonlLogger(path, run_id="r").log("eval", step=40, metrics={"loss/val": 0.45})  # the resumed run
    assert [(r["step"], r["metrics"]["loss/val"]) for r in read_records(path)] == \
        [(10, 0.9), (20, 0.6), (30, 0.5), (40, 0.45)]
    assert path.read_text().count("\n") == 4


def test_a_torn_line_before_the_end_is_refused_naming_it(tmp_path, monkeypatch, capsys):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"kind": "eval", "step": 1, "metrics": {"loss/val": 0.5}}\n{"kind": "ev\n'
                    '{"kind": "eval", "step": 2, "metrics": {"loss/val": 0.4}}\n')
    assert re.fullmatch(r".*metrics\.jsonl:2: not valid JSON \(.*\)", retu_error(monkeypatch, capsys, "phases", path))
