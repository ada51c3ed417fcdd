"""The judges' shipped weights (safetensors) and ASR language model; `weights_dir()` finds them.

Rebuild them all with `anygpt eval judges-train --world DIR --out anygpt/eval/judges/weights`.
"""

from pathlib import Path

from anygpt.errors import AnyGPTError


def weights_dir() -> Path:
    return Path(__file__).resolve().parent


def weights_path(name: str, folder: str | Path | None = None) -> Path:
    path = Path(folder) / name if folder is not None else weights_dir() / name
    if not path.is_file():
        raise AnyGPTError(f"judge weights {path} are missing: rebuild them with "
                          "`anygpt eval judges-train --world DIR --out anygpt/eval/judges/weights`")
    return path
