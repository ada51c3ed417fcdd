"""A fast (tokenizer.json) text tokenizer without transformers: the part of its API this package uses.

transformers' tokenizer classes cost a second or two to import; the `tokenizers` library they wrap
costs 0.05 s. For a folder saved by transformers' fast tokenizer (tokenizer.json beside a
tokenizer_config.json naming TokenizersBackend or PreTrainedTokenizerFast), `TextTokenizer` gives
the same ids, text and special tokens as transformers' class (tests/test_tokenizer.py checks them
side by side):

    tok(text, add_special_tokens=False[, return_offsets_mapping=True]) -> {"input_ids", "attention_mask"[, "offset_mapping"]}
    tok.decode(ids, skip_special_tokens=False)      the backend's decoder, no clean-up of spaces
    tok.convert_tokens_to_ids / convert_ids_to_tokens, get_vocab, get_added_vocab, len(tok)
    tok.bos_token_id, eos_token_id, unk_token_id, pad_token_id, all_special_ids, backend_tokenizer

`load_text_tokenizer` returns None for any other folder (a SentencePiece tokenizer, a clean-up of
spaces, extra special tokens): transformers loads those.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tokenizers import Tokenizer

FAST_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
ROLES = ("bos", "eos", "unk", "pad")


class TextTokenizer:
    is_fast = True

    def __init__(self, backend, specials: dict[str, str | None], folder: Path):
        self.backend_tokenizer = backend
        self._specials = specials  # role -> token text
        self._folder = folder  # where it was read from (save_pretrained copies its config)

    # --- special tokens ---------------------------------------------------------------------------
    def _special_id(self, role: str) -> int | None:
        token = self._specials.get(role)
        return None if token is None else self.convert_tokens_to_ids(token)

    bos_token_id = property(lambda self: self._special_id("bos"))
    eos_token_id = property(lambda self: self._special_id("eos"))
    unk_token_id = property(lambda self: self._special_id("unk"))
    pad_token_id = property(lambda self: self._special_id("pad"))

    @property
    def all_special_tokens(self) -> list[str]:
        return list(dict.fromkeys(t for t in self._specials.values() if t is not None))

    @property
    def all_special_ids(self) -> list[int]:
        return [self.convert_tokens_to_ids(t) for t in self.all_special_tokens]

    # --- vocabulary -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.backend_tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        return self.backend_tokenizer.get_vocab(with_added_tokens=True)

    def get_added_vocab(self) -> dict[str, int]:
        added = self.backend_tokenizer.get_added_tokens_decoder()
        return {token.content: i for i, token in sorted(added.items())}

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            i = self.backend_tokenizer.token_to_id(tokens)
            return self.unk_token_id if i is None else i
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self.backend_tokenizer.id_to_token(ids)
        return [self.backend_tokenizer.id_to_token(int(i)) for i in ids]

    # --- text -------------------------------------------------------------------------------------
    def __call__(self, text: str, *, add_special_tokens: bool = True, return_offsets_mapping: bool = False) -> dict:
        if not isinstance(text, str):
            raise TypeError(f"TextTokenizer encodes one str, got {type(text).__name__}")
        enc = self.backend_tokenizer.encode(text, add_special_tokens=add_special_tokens)
        out = {"input_ids": list(enc.ids), "attention_mask": list(enc.attention_mask)}
        if return_offsets_mapping:
            out["offset_mapping"] = list(enc.offsets)
        return out

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        ids = [ids] if isinstance(ids, int) else [int(i) for i in ids]
        return self.backend_tokenizer.decode(ids, skip_special_tokens=skip_special_tokens)

    def save_pretrained(self, out: str | Path) -> None:
        """tokenizer.json and the folder's tokenizer_config.json, as transformers reads them back."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.backend_tokenizer.save(str(out / "tokenizer.json"))
        shutil.copyfile(self._folder / "tokenizer_config.json", out / "tokenizer_config.json")


def load_text_tokenizer(path: str | Path) -> TextTokenizer | None:
    """The folder's tokenizer, or None when it is not a plain fast tokenizer this class reproduces."""
    path = Path(path)
    try:
        config = json.loads((path / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(config, dict) or not (path / "tokenizer.json").is_file():
        return None
    known = {"backend", "is_local", "local_files_only", "model_max_length", "tokenizer_class",
             "clean_up_tokenization_spaces", "added_tokens_decoder", *(f"{r}_token" for r in ROLES)}
    if (config.get("tokenizer_class") not in FAST_CLASSES or config.get("clean_up_tokenization_spaces")
            or set(config) - known):
        return None
    specials = {r: _content(config.get(f"{r}_token")) for r in ROLES}
    if any(v is False for v in specials.values()):
        return None
    try:
        backend = Tokenizer.from_file(str(path / "tokenizer.json"))
    except Exception:  # noqa: BLE001 - the library raises a plain Exception for a bad file
        return None
    return TextTokenizer(backend, specials, path)


def _content(token) -> str | None | bool:
    """A special token as tokenizer_config.json writes it (a str, or an AddedToken dict); False: unreadable."""
    if token is None or isinstance(token, str):
        return token
    if isinstance(token, dict) and isinstance(token.get("content"), str):
        return token["content"]
    return False
