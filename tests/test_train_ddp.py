"""Two processes on CPU (gloo) through `anygpt train --processes 2`: the run finishes, and its losses
equal a one-process run that accumulates the same global batch (the token-weighted loss and the
row order do not depend on how rows are split among processes)."""

import json
import os
import subprocess
import sys

import pytest

from test_train_resume import config, fresh, make_packed

from anygpt.train.metrics import read_metrics
from anygpt.train.trainer import train


@pytest.fixture(scope="module")
def packed(tmp_path_factory, debug_bundle):
    return make_packed(tmp_path_factory.mktemp("ddp"), debug_bundle, budget=3000)


def test_ddp_two_processes_match_one_process_accumulating(packed, tmp_path, debug_bundle):
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "anygpt.train", "--data", str(packed[0]), "--val-data", str(packed[1]),
           "--out", str(out), "--max-len", "256", "--micro-batch", "1", "--grad-accum", "1", "--steps", "3",
           "--lr", "3e-3", "--processes", "2", "--set", "tensorboard=false", "--set", "export=false",
           "--set", "eval_max_rows=4", "--set", "warmup_ratio=0.2"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    first = json.loads(r.stdout.splitlines()[0])  # the resolved configuration comes first
    assert first["command"] == "train" and first["launch"]["processes"] == 2
    ddp = [m["loss"] for m in read_metrics(out / "metrics.jsonl") if "loss" in m]
    assert len(ddp) == 3
    single = train(config(packed, tmp_path / "one", micro_batch=1, grad_accum=2, steps=3),
                   bundle=fresh(debug_bundle), log=lambda m: None)
    assert ddp == pytest.approx(single["losses"], rel=1e-4, abs=1e-4)
    assert (out / "checkpoints" / "step-0000003" / "trainer_state.json").is_file()
