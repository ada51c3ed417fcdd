"""`KEY=VALUE` strings typed by a config dataclass's fields (anygpt.settings)."""

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import pytest

from anygpt.errors import AnyGPTError
from anygpt.settings import parse_assignments, parse_value


@dataclass
class Config:
    steps: int = 0
    lr: float = 1e-3
    resume: bool = True
    name: str = "run"
    seed: int | None = None
    limit: Optional[float] = None
    targets: list[str] = field(default_factory=list)
    sizes: tuple[int, ...] = (1,)


def test_values_take_their_field_types():
    got = parse_assignments(["steps=12", "lr=3e-4", "resume=false", "name=a b=c", "seed=7", "limit=none",
                             "targets=q_proj,v_proj,", "sizes=2,4", " steps = 1e3"], Config)
    assert got == {"steps": 1000, "lr": 3e-4, "resume": False, "name": "a b=c", "seed": 7, "limit": None,
                   "targets": ["q_proj", "v_proj"], "sizes": (2, 4)}
    assert type(got["steps"]) is int and type(got["lr"]) is float and got["resume"] is False


@pytest.mark.parametrize("text, value", [("true", True), ("false", False), ("TRUE", True), (" False ", False)])
def test_bool_spellings(text, value):
    assert parse_value(text, bool) is value


@pytest.mark.parametrize("text", ["1", "0", "yes", "no", "on", "", "truee"])
def test_other_bool_spellings_are_refused(text):
    with pytest.raises(ValueError, match="true or false"):
        parse_value(text, bool)


@pytest.mark.parametrize("item, message", [
    ("steps=2.5", "bad setting steps='2.5': expected a whole number"),
    ("steps=abc", "bad setting steps='abc': expected a whole number"),
    ("steps=1e400", "expected a whole number"),
    ("steps=0x10", "expected a whole number"),
    ("lr=nan", "bad setting lr='nan': expected a finite number"),
    ("lr=fast", "bad setting lr='fast': expected a number"),
    ("resume=1", "bad setting resume='1': expected true or false"),
    ("seed=x", "expected a whole number"),
    ("sizes=1,b", "expected a whole number"),
])
def test_bad_values_say_what_was_expected(item, message):
    with pytest.raises(AnyGPTError, match=re.escape(message)):
        parse_assignments([item], Config)


@pytest.mark.parametrize("item", ["bogus=1", "Steps=1"])
def test_unknown_keys_name_the_settable_ones(item):
    with pytest.raises(AnyGPTError) as e:
        parse_assignments([item], Config, what="training setting")
    assert str(e.value).startswith(f"bad training setting {item.split('=')[0]!r}: unknown key; settable: ")
    assert "steps" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("item", ["novalue", "=1", " =1"])
def test_an_item_without_a_key_and_value_is_refused(item):
    with pytest.raises(AnyGPTError, match="--set expects KEY=VALUE"):
        parse_assignments([item], Config)


def test_any_is_a_json_literal_or_the_text():
    got = parse_assignments(["a=128", "b=[1, 2]", 'c="x"', "d=phones", "e=true"], lambda key: Any)
    assert got == {"a": 128, "b": [1, 2], "c": "x", "d": "phones", "e": True}


def test_a_table_of_types_and_a_later_value_wins():
    assert parse_assignments(["n=1", "n=2"], {"n": int}) == {"n": 2}
    assert parse_assignments([], Config) == {}


def test_train_and_decoding_use_it():
    from anygpt.generate.config import parse_settings
    from anygpt.train.recipe import load_recipe

    cfg = load_recipe("pretrain", sets=["lora_targets=q_proj,v_proj", "steps=1e2", "resume=false"])
    assert cfg.lora_targets == ["q_proj", "v_proj"] and cfg.steps == 100 and cfg.resume is False
    with pytest.raises(AnyGPTError, match="bad training setting 'nope': unknown key"):
        load_recipe("pretrain", sets=["nope=1"])
    assert parse_settings(["seed=none", "constrained=false"]) == {"seed": None, "constrained": False}
    with pytest.raises(AnyGPTError, match="bad decoding setting 'music_top_q': unknown key; settable: "):
        parse_settings(["music_top_q=1"])
