"""`retu list` shows every registry entry and the six algorithm presets."""

import json
import subprocess
import sys

from retu.algos.registry import REGISTRY


def test_list_json_covers_the_registry():
    r = subprocess.run([sys.executable, "-m", "retu", "list", "--json"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    algos = {row["name"] for row in rows if row["kind"] == "algorithm"}
    assert algos == {"grpo", "dapo_d", "dapo_dc", "luffy", "srft", "upt"}
    assert len(rows) == sum(len(t) for t in REGISTRY.values()) + 6
    assert all(row["paper"].startswith("https://arxiv.org/abs/") for row in rows)
