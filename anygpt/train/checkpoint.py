"""Atomic checkpoints: every process writes into `.tmp-step-N`; when all are done the main process
adds trainer_state.json and renames the folder to `step-N`, then points `latest` at it (written to
a temporary file and renamed). A crash at any moment leaves the previous checkpoint intact.

    out/checkpoints/step-0000100/   accelerate state (model, optimizer, RNG of every process)
                                    + trainer_state.json (step, tokens, config)
    out/checkpoints/latest          "step-0000100"
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

STATE = "trainer_state.json"


def checkpoint_dir(out: str | Path) -> Path:
    return Path(out) / "checkpoints"


def latest(out: str | Path) -> Path | None:
    ck = checkpoint_dir(out)
    pointer = ck / "latest"
    if not pointer.is_file():
        return None
    path = ck / pointer.read_text(encoding="utf-8").strip()
    return path if (path / STATE).is_file() else None


def save(accelerator, out: str | Path, step: int, state: dict, keep: int = 2) -> Path:
    ck = checkpoint_dir(out)
    name = f"step-{step:07d}"
    tmp, final = ck / f".tmp-{name}", ck / name
    if accelerator.is_main_process:
        ck.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (tmp / STATE).write_text(json.dumps({**state, "step": step}, indent=1) + "\n", encoding="utf-8")
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        pointer_tmp = ck / ".latest.tmp"
        pointer_tmp.write_text(name + "\n", encoding="utf-8")
        os.replace(pointer_tmp, ck / "latest")
        old = sorted(p for p in ck.glob("step-*") if p.is_dir() and p != final)
        for p in old[: max(0, len(old) - (keep - 1))]:
            shutil.rmtree(p, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def load(accelerator, path: Path) -> dict:
    accelerator.load_state(str(path))
    return json.loads((path / STATE).read_text(encoding="utf-8"))
