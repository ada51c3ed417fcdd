"""SoundStorm: the release's checkpoint layout, MaskGIT invariants, checkpoint errors (tiny models)."""

import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from anygpt.codecs.soundstorm import (
    PRESETS,
    MaskGITSchedule,
    SoundStorm,
    load_soundstorm,
)
from anygpt.errors import BundleError

pytestmark = pytest.mark.usefixtures("one_thread")

# The release's state dict, written out by reading soundstorm_speechtokenizer/soundstorm.py of
# OpenMOSS/AnyGPT and voice_clone.py's configuration (ConformerWrapper(codebook_size=1024,
# num_quantizers=7, conformer={dim: 1024, depth: 12, heads: 8, dim_head: 128}), SoundStorm(
# num_semantic_token_ids=1024)). Not computed by importing it. Sequential indices skip the
# parameter-free members (Swish, Dropout, Rearrange, GLU). EinMix's bias has a 1 for every output
# axis it does not depend on ('b n gq l' with bias 'gq l' -> (1, 1, 7, 1024)). The rotary
# embedding's inv_freq buffer is not persistent, so it is not in the checkpoint.
D, Q, K, INNER, FF = 1024, 7, 1024, 2048, 4096


def _official_block(i: int) -> list[tuple[str, tuple[int, ...]]]:
    p = f"net.conformer.layers.{i}."
    # Scale(0.5, PreNorm(dim, FeedForward)): Scale.fn -> PreNorm (.norm, .fn) -> FeedForward.net
    ff = lambda name: [
        (f"{p}{name}.fn.norm.weight", (D,)),
        (f"{p}{name}.fn.norm.bias", (D,)),
        (f"{p}{name}.fn.fn.net.0.weight", (FF, D)),
        (f"{p}{name}.fn.fn.net.0.bias", (FF,)),
        (f"{p}{name}.fn.fn.net.3.weight", (D, FF)),
        (f"{p}{name}.fn.fn.net.3.bias", (D,)),
    ]
    return (
        ff("ff1")
        + [
            (f"{p}attn.norm.weight", (D,)),
            (f"{p}attn.norm.bias", (D,)),
            (f"{p}attn.fn.to_q.weight", (8 * 128, D)),
            (f"{p}attn.fn.to_kv.weight", (2 * 8 * 128, D)),
            (f"{p}attn.fn.to_out.weight", (D, 8 * 128)),
            (f"{p}attn.fn.to_out.bias", (D,)),
            (f"{p}conv.net1.0.weight", (D,)),
            (f"{p}conv.net1.0.bias", (D,)),
            (f"{p}conv.net1.2.weight", (2 * INNER, D, 1)),
            (f"{p}conv.net1.2.bias", (2 * INNER,)),
            (f"{p}conv.ds_conv.conv.weight", (INNER, 1, 31)),
            (f"{p}conv.ds_conv.conv.bias", (INNER,)),
            (f"{p}conv.net2.1.gamma", (1, INNER, 1)),
            (f"{p}conv.net2.2.weight", (D, INNER, 1)),
            (f"{p}conv.net2.2.bias", (D,)),
        ]
        + ff("ff2")
        + [
            (f"{p}post_norm.weight", (D,)),
            (f"{p}post_norm.bias", (D,)),
        ]
    )


OFFICIAL_STATE = (
    [("net.code_embeds.weight", (Q * (K + 1), D))]
    + [entry for i in range(12) for entry in _official_block(i)]
    + [
        ("net.heads.0.weight", (D * Q, D)),
        ("net.heads.0.bias", (D * Q,)),
        ("net.to_logits.0.weight", (D,)),
        ("net.to_logits.0.bias", (D,)),
        ("net.to_logits.2.weight", (Q, D, K)),
        ("net.to_logits.2.bias", (1, 1, Q, K)),
        ("semantic_token_emb.weight", (1024, D)),
    ]
)
OFFICIAL_PARAMETERS = 351_378_432  # 1.41 GB in fp32, 0.70 GB in fp16


def test_soundstorm_official_state_dict_names_and_shapes():
    with torch.device("meta"):  # 351 M parameters, nothing allocated
        model = SoundStorm(PRESETS["official"])
    ours = [(k, tuple(v.shape)) for k, v in model.state_dict().items()]
    assert ours == OFFICIAL_STATE  # same names, same shapes, same order
    assert sum(v.numel() for v in model.state_dict().values()) == OFFICIAL_PARAMETERS


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SoundStorm(PRESETS["tiny"]).eval()


@settings(max_examples=5, deadline=None)
@given(T=st.integers(1, 8), P=st.integers(0, 5), seed=st.integers(0, 2**16), steps=st.integers(1, 4))
def test_soundstorm_keeps_prompt_and_semantic_layer(tiny, T, P, seed, steps):
    gen = torch.Generator().manual_seed(seed)
    semantic = torch.randint(0, 1024, (1, T), generator=gen)
    prompt = torch.randint(0, 1024, (1, P, 8), generator=gen) if P else None
    out = tiny.generate(
        semantic, prompt, schedule=MaskGITSchedule(steps=steps), generator=gen, return_prompt=True
    )  # (1, P + T, 8)
    assert out.shape == (1, P + T, 8)
    assert torch.equal(out[0, P:, 0], semantic[0])  # semantic layer never changed
    if P:
        assert torch.equal(out[0, :P], prompt[0])  # prompt positions == prompt codes, every layer
    assert ((out >= 0) & (out < 1024)).all()  # no mask id (1024) left
    assert torch.equal(
        tiny.generate(semantic, prompt, generator=torch.Generator().manual_seed(seed)),
        tiny.generate(semantic, prompt, generator=torch.Generator().manual_seed(seed)),
    )


def test_soundstorm_same_seed_same_output_other_seed_other_voice(tiny):
    semantic = torch.randint(0, 1024, (1, 24), generator=torch.Generator().manual_seed(3))
    a = tiny.generate(semantic, generator=torch.Generator().manual_seed(1))
    b = tiny.generate(semantic, generator=torch.Generator().manual_seed(1))
    c = tiny.generate(semantic, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)  # passes 2..3 on RVQ layer 2 sample (temperatures 1/3, 2/3)
    assert torch.equal(a[..., 0], c[..., 0])
    greedy = MaskGITSchedule(temperature=0.0)  # every pass argmax: the seed no longer matters
    assert torch.equal(
        tiny.generate(semantic, schedule=greedy, generator=torch.Generator().manual_seed(1)),
        tiny.generate(semantic, schedule=greedy, generator=torch.Generator().manual_seed(2)),
    )


def test_soundstorm_official_schedule_runs_steps_then_one_pass_per_level(tiny):
    calls = []
    hook = tiny.net.register_forward_hook(lambda *_: calls.append(1))
    try:
        tiny.generate(torch.zeros(1, 10, dtype=torch.long), generator=torch.Generator().manual_seed(0))
    finally:
        hook.remove()
    assert len(calls) == 3 + 6  # 3 MaskGIT passes on RVQ layer 2, one greedy pass on layers 3..8


def test_soundstorm_checkpoint_round_trip(tiny, tmp_path):
    path = tmp_path / "soundstorm.pt"
    torch.save(tiny.state_dict(), path)
    loaded = load_soundstorm(path, "tiny")
    semantic = torch.randint(0, 1024, (1, 20), generator=torch.Generator().manual_seed(0))
    prompt = torch.randint(0, 1024, (1, 5, 8), generator=torch.Generator().manual_seed(1))
    assert torch.equal(
        tiny.generate(semantic, prompt, generator=torch.Generator().manual_seed(5)),
        loaded.generate(semantic, prompt, generator=torch.Generator().manual_seed(5)),
    )
    # a trainer package {'model': state dict, 'optim': ...} loads too
    torch.save({"model": tiny.state_dict(), "best_dev_loss": torch.tensor(1.0)}, tmp_path / "pkg.pt")
    load_soundstorm(tmp_path / "pkg.pt", "tiny")


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def _bad_checkpoints(tiny, tmp_path):
    good = tmp_path / "good.pt"
    torch.save(tiny.state_dict(), good)
    data = good.read_bytes()
    state = tiny.state_dict()
    cases = {}
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    cases["truncated"] = (tmp_path / "truncated.pt", "corrupt or truncated")
    (tmp_path / "garbage.pt").write_bytes(b"\x00not a checkpoint" * 50)
    cases["garbage"] = (tmp_path / "garbage.pt", "corrupt or truncated")
    (tmp_path / "empty.pt").write_bytes(b"")
    cases["empty"] = (tmp_path / "empty.pt", "corrupt or truncated")
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"x": _Evil()}, f, protocol=2)
    cases["code in pickle"] = (tmp_path / "evil.pt", "corrupt or truncated")
    torch.save({k: v for k, v in state.items() if "post_norm" not in k}, tmp_path / "missing.pt")
    cases["missing"] = (tmp_path / "missing.pt", "missing keys: net.conformer.layers.0.post_norm.weight")
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "unexpected.pt")
    cases["unexpected"] = (tmp_path / "unexpected.pt", "unexpected keys: extra.weight")
    torch.save({**state, "semantic_token_emb.weight": torch.zeros(1024, 48)}, tmp_path / "shape.pt")
    cases["shape"] = (
        tmp_path / "shape.pt",
        "shape mismatch (checkpoint vs model): semantic_token_emb.weight (1024, 48) vs (1024, 32)",
    )
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    cases["not a dict"] = (tmp_path / "list.pt", "not a state dict")
    cases["absent"] = (tmp_path / "absent.pt", "not found")
    return cases


def test_soundstorm_bad_checkpoints_raise_one_line_bundle_error(tiny, tmp_path, capsys):
    for name, (path, expected) in _bad_checkpoints(tiny, tmp_path).items():
        with pytest.raises(BundleError) as info:
            load_soundstorm(path, "tiny")
        message = str(info.value)
        assert message.startswith(str(path)), name
        assert expected in message, (name, message)
        assert "\n" not in message, name
    assert "pickled code ran" not in capsys.readouterr().out  # weights_only refused to run it


def test_soundstorm_official_config_refuses_tiny_checkpoint(tiny, tmp_path):
    torch.save(tiny.state_dict(), tmp_path / "tiny.pt")
    with pytest.raises(BundleError, match="shape mismatch"):
        load_soundstorm(tmp_path / "tiny.pt", "official")  # built on the meta device: cheap


# Logits of the release's own network code (soundstorm_speechtokenizer/soundstorm.py, run once
# outside this suite with attn_flash=False) for the tiny shape, weights drawn below: pinned here.
RELEASE_LOGITS_CODE_0 = [  # logits[0, n, q, 0] for n < 6 frames, q < 7 levels
    [0.64326, 0.42878, 0.08929, 0.31369, 0.38779, -0.10415, 0.00799],
    [0.63286, 0.52694, 0.06245, 0.39694, 0.32391, -0.07102, 0.01456],
    [0.62694, 0.45449, 0.10723, 0.35121, 0.39361, -0.13463, -0.01037],
    [0.64968, 0.44453, 0.13931, 0.29920, 0.42308, -0.13184, 0.01676],
    [0.63779, 0.49606, 0.17035, 0.31144, 0.44469, -0.15804, 0.00302],
    [0.65964, 0.50338, 0.17363, 0.35454, 0.43545, -0.13920, 0.02876],
]
RELEASE_ARGMAX_FRAME_1 = [406, 749, 963, 874, 719, 177, 6]


def test_soundstorm_logits_match_the_release_network():
    model = SoundStorm(PRESETS["tiny"]).eval()
    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(v.shape, generator=g) * 0.2 for k, v in sorted(model.state_dict().items())}
    model.load_state_dict(state)
    semantic = torch.randint(0, 1024, (1, 6), generator=g)
    acoustic = torch.randint(0, 1025, (1, 6, 7), generator=g)  # 1024: masked
    with torch.no_grad():
        logits = model(semantic, acoustic)  # (1, 6, 7, 1024)
    torch.testing.assert_close(logits[0, :, :, 0], torch.tensor(RELEASE_LOGITS_CODE_0), atol=2e-5, rtol=0)
    assert logits[0, 1].argmax(-1).tolist() == RELEASE_ARGMAX_FRAME_1
    assert abs(logits.std().item() - 0.34230) < 1e-4
