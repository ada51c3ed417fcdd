"""`anygpt eval judges` end to end on a tiny world it builds itself; shipped weights load and round-trip."""

import argparse
import json
import shutil
from pathlib import Path

import pytest

from anygpt.world import music

needs_tools = pytest.mark.skipif(
    shutil.which("flite") is None or shutil.which("fluidsynth") is None
    or not any(Path(f).is_file() for f in music.SOUNDFONT_CANDIDATES),
    reason="needs Debian flite, fluidsynth and a GM soundfont")


def test_every_shipped_checkpoint_loads_with_its_config():
    from anygpt.eval.judges.checkpoint import read_checkpoint
    from anygpt.eval.judges.contrastive import ContrastiveJudge
    from anygpt.eval.judges.image import ImageJudge
    from anygpt.eval.judges.music import MusicJudge
    from anygpt.eval.judges.weights import weights_dir

    total = sum(p.stat().st_size for p in weights_dir().iterdir() if p.is_file())
    assert total < 10 * 2**20
    ImageJudge.load()
    MusicJudge.load()
    for kind in ("clip", "clap"):
        judge = ContrastiveJudge.load(kind)
        assert judge.config.kind == kind and judge.config.vocab_size == len(judge.vocab)
    _, config, extra = read_checkpoint("image_attributes.safetensors")
    assert config and extra["seed"] == 0


def test_checkpoint_round_trip(tmp_path):
    import torch

    from anygpt.eval.judges.checkpoint import load_module, save_module
    from anygpt.eval.judges.music import MusicJudgeConfig, build_family_model

    torch.manual_seed(0)
    model = build_family_model(MusicJudgeConfig(hidden=16)).eval()
    save_module(model, MusicJudgeConfig(hidden=16), tmp_path / "m.safetensors", extra={"x": [1]})
    loaded, config, extra = load_module("m.safetensors", MusicJudgeConfig, build_family_model, tmp_path)
    x = torch.randn(2, model.body[0].in_features)
    assert config.hidden == 16 and extra == {"x": [1]}
    assert torch.equal(loaded(x)[0], model(x)[0])


def test_missing_weights_is_a_one_line_error(tmp_path):
    from anygpt.errors import AnyGPTError
    from anygpt.eval.judges.image import ImageJudge

    with pytest.raises(AnyGPTError, match="judges.train"):
        ImageJudge.load(tmp_path)


@needs_tools
def test_eval_judges_json_on_a_tiny_world(tmp_path, capsys):
    from anygpt.world.build import build
    from anygpt.world.config import WorldConfig
    from anygpt.train.judges import command

    world = tmp_path / "w"
    build(world, WorldConfig(seed=5, n=10, clip_seconds=2.0, clips_per_render=2,
                             kinds=("images", "speech", "music")), workers=2, progress=False)
    parser = argparse.ArgumentParser()
    command.register(parser.add_subparsers())
    args = parser.parse_args(["judges", "--world", str(world), "--json", "--limit", "3", "--no-generic-lm"])
    assert args.func(args) == 0
    figures = json.loads(capsys.readouterr().out)
    for key in ("image_attr_acc", "asr_wer_ground_truth", "speaker_sim_same", "speaker_sim_other",
                "music_attr_acc", "clip_analog_retrieval_top1", "clap_analog_retrieval_top1", "cider_ground_truth"):
        assert key in figures, key
    assert set(figures["music_attr_acc"]) >= {"tempo", "key", "mode", "family"}
    assert figures["image_attr_acc"] >= 0.8 and figures["asr_wer_ground_truth"] <= 0.5
