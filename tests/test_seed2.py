"""SEED-2 image tokenizer: tiny random models end to end, the official weight layout, strict loading,
the release's preprocessing, and decoding through a tiny random Stable unCLIP pipeline.

Every test name contains "seed" (`pytest -k seed`). Nothing here may reach the network: the hub is
offline (conftest) and every socket connection raises.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
from official_tiny import write_unclip
from PIL import Image

from anygpt.codecs.base import Codec, build_codec
from anygpt.codecs.seed2 import checkpoint as ckpt
from anygpt.codecs.seed2.codec import CLIP_MEAN, CLIP_STD, Seed2Codec, preprocess
from anygpt.codecs.seed2.config import OFFICIAL, TINY, Seed2Config
from anygpt.errors import BundleError, LayoutError

pytestmark = pytest.mark.usefixtures("no_network", "one_thread")


@pytest.fixture(scope="module")
def tiny() -> Seed2Codec:
    return Seed2Codec(config="tiny", seed=0)


def _scene(seed: int, size=(48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (*size[::-1], 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------
# Tiny random model


def test_seed_tiny_encode_gives_32_codes_in_range(tiny):
    assert isinstance(tiny, Codec)
    assert (tiny.modality, tiny.codebook_size, tiny.num_codebooks, tiny.tokens_per_item) == ("image", 8192, 1, 32)
    codes = tiny.encode(_scene(0))
    assert codes.shape == (1, 32) and codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < 8192
    assert torch.equal(codes, tiny.encode(_scene(0)))  # deterministic
    assert not torch.equal(codes, tiny.encode(_scene(1)))  # the image matters
    assert torch.equal(codes, tiny.encode(np.asarray(_scene(0))))  # uint8 arrays are images too


# Computed once by the release's own seed_qformer modules (VisionTransformer, BertLMHeadModel,
# vit.Block, VectorQuantizer2 and Blip2QformerQuantizer's get_codebook_indices/get_codebook_entry,
# with timm stubbed) at the TINY sizes, loaded with this codec's seed-3 state dict: codes agreed
# exactly on 6 images, features and embeddings to 1.5e-6. Regenerate with
# tests/fixtures/seed2/release_parity.py (it needs the release's source).
RELEASE_TINY_SEED3_CODES = [
    5004, 4251, 1413, 2761, 960, 3020, 6796, 613, 6293, 2103, 7396, 5554, 1862, 4549, 8126, 2105,
    5657, 5637, 3488, 6954, 3765, 5160, 5870, 4085, 3368, 4595, 7476, 7736, 393, 5733, 532, 1369,
]
RELEASE_TINY_SEED3_EMBEDDING_HEAD = [0.08574, 0.59798, 0.38149, -1.04383, -0.01152, -0.39532]  # codes 7 * arange(32)
RELEASE_TINY_SEED3_EMBEDDING_NORM = 20.11767


def test_seed_tiny_matches_release_values():
    codec = Seed2Codec(config="tiny", seed=3)
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (50, 70, 3), dtype=np.uint8))
    assert codec.encode(image)[0].tolist() == RELEASE_TINY_SEED3_CODES
    emb = codec.embed_codes(torch.arange(32)[None] * 7)[0]
    assert torch.allclose(emb[:6], torch.tensor(RELEASE_TINY_SEED3_EMBEDDING_HEAD), atol=1e-4)
    assert abs(float(emb.norm()) - RELEASE_TINY_SEED3_EMBEDDING_NORM) < 1e-3


def test_seed_registry_builds_and_config_rebuilds(tiny):
    codec = build_codec("seed2", json.loads(json.dumps(tiny.config())))  # plain JSON survives
    assert codec.config() == tiny.config()
    a, b = tiny.state_dict(), codec.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = build_codec("seed2", {"config": "tiny", "seed": 1})
    assert not torch.equal(other.quantize.embedding.weight, tiny.quantize.embedding.weight)


def test_seed_bfloat16_encode(tiny):
    codec = Seed2Codec(config="tiny", dtype="bfloat16")
    assert codec.query_tokens.dtype == torch.bfloat16
    codes = codec.encode(_scene(0))
    assert codes.shape == (1, 32) and int(codes.max()) < 8192


def test_seed_codec_import_does_not_import_diffusers():
    code = "import sys, anygpt.codecs.seed2.codec; print('diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------
# Weights: round trips in the official layout


def _codes_equal(a: Seed2Codec, b: Seed2Codec) -> bool:
    return all(torch.equal(a.encode(_scene(s)), b.encode(_scene(s))) for s in range(2))


def test_seed_state_dict_round_trip_pt_and_safetensors(tiny, tmp_path):
    from safetensors.torch import save_file

    torch.save(tiny.state_dict(), tmp_path / ckpt.WEIGHTS_NAME)
    loaded = Seed2Codec(path=tmp_path, config="tiny")  # a folder holding seed_quantizer.pt
    a, b = tiny.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert _codes_equal(tiny, loaded)
    assert loaded.config()["path"] == str(tmp_path)

    save_file({k: v.contiguous() for k, v in a.items()}, tmp_path / "seed2.safetensors")
    assert _codes_equal(tiny, Seed2Codec(path=tmp_path / "seed2.safetensors", config="tiny"))


def test_seed_loads_release_layout_split_files_fp16_and_unused_keys(tiny, tmp_path):
    """The release's layout: EVA in a bare-ViT file, the rest plus keys inference never reads."""
    state = {k: v.half() for k, v in tiny.state_dict().items()}  # the release stores fp16
    eva = {k.removeprefix("visual_encoder."): v for k, v in state.items() if k.startswith("visual_encoder.")}
    rest = {k: v for k, v in state.items() if not k.startswith("visual_encoder.")}
    hidden = TINY.qformer.hidden_size
    rest["pos_embed"] = torch.zeros(1, 32, hidden)  # recon_s branch
    rest["blocks.0.norm1.weight"] = torch.ones(hidden)
    rest["Qformer.bert.embeddings.position_ids"] = torch.arange(512)[None]
    rest["Qformer.bert.encoder.layer.0.intermediate.dense.weight"] = torch.zeros(4, hidden)
    torch.save(eva, tmp_path / ckpt.EVA_NAME)
    torch.save({"model": rest}, tmp_path / ckpt.WEIGHTS_NAME)  # LAVIS-style wrapper

    loaded = Seed2Codec(path=tmp_path, config="tiny")
    assert loaded.query_tokens.dtype == torch.float32  # cast to the requested dtype
    b = loaded.state_dict()
    assert all(torch.equal(b[k], state[k].float()) for k in state)
    # An explicit list works too, and without the EVA file the error says what is missing.
    Seed2Codec(path=[tmp_path / ckpt.EVA_NAME, tmp_path / ckpt.WEIGHTS_NAME], config="tiny")
    with pytest.raises(BundleError, match="EVA ViT-g weights are missing"):
        Seed2Codec(path=tmp_path / ckpt.WEIGHTS_NAME, config="tiny")


# ---------------------------------------------------------------------------------------------
# The official layout, pinned: names and shapes read off the release's model definitions
# (seed_qformer/eva_vit.py create_eva_vit_g, qformer_causual.py BertLayer, qformer_quantizer.py
# Blip2QformerQuantizer with recon_s, use_qformer_image=False), minus what inference never reads.


def _official_table() -> dict[str, tuple[int, ...]]:
    W, M, P = 1408, 6144, 14  # EVA width, MLP width (int(1408 * 4.3637)), patch
    H, F, C, K = 768, 3072, 32, 8192  # Q-Former width, feed-forward, codebook dim, codebook size
    t: dict[str, tuple[int, ...]] = {
        "visual_encoder.cls_token": (1, 1, W),
        "visual_encoder.pos_embed": (1, 16 * 16 + 1, W),
        "visual_encoder.patch_embed.proj.weight": (W, 3, P, P),
        "visual_encoder.patch_embed.proj.bias": (W,),
    }
    for i in range(39):
        b = f"visual_encoder.blocks.{i}."
        t |= {
            b + "norm1.weight": (W,), b + "norm1.bias": (W,),
            b + "attn.qkv.weight": (3 * W, W), b + "attn.q_bias": (W,), b + "attn.v_bias": (W,),
            b + "attn.proj.weight": (W, W), b + "attn.proj.bias": (W,),
            b + "norm2.weight": (W,), b + "norm2.bias": (W,),
            b + "mlp.fc1.weight": (M, W), b + "mlp.fc1.bias": (M,),
            b + "mlp.fc2.weight": (W, M), b + "mlp.fc2.bias": (W,),
        }
    t |= {"ln_vision.weight": (W,), "ln_vision.bias": (W,), "query_tokens": (1, 32, H)}
    t |= {"Qformer.bert.embeddings.LayerNorm.weight": (H,), "Qformer.bert.embeddings.LayerNorm.bias": (H,)}

    def attention(prefix: str, kv: int) -> dict:
        return {
            prefix + "self.query.weight": (H, H), prefix + "self.query.bias": (H,),
            prefix + "self.key.weight": (H, kv), prefix + "self.key.bias": (H,),
            prefix + "self.value.weight": (H, kv), prefix + "self.value.bias": (H,),
            prefix + "output.dense.weight": (H, H), prefix + "output.dense.bias": (H,),
            prefix + "output.LayerNorm.weight": (H,), prefix + "output.LayerNorm.bias": (H,),
        }

    for i in range(12):
        L = f"Qformer.bert.encoder.layer.{i}."
        t |= attention(L + "attention.", H)
        if i % 2 == 0:  # cross_attention_freq = 2
            t |= attention(L + "crossattention.", W)
        t |= {
            L + "intermediate_query.dense.weight": (F, H), L + "intermediate_query.dense.bias": (F,),
            L + "output_query.dense.weight": (H, F), L + "output_query.dense.bias": (H,),
            L + "output_query.LayerNorm.weight": (H,), L + "output_query.LayerNorm.bias": (H,),
        }
    t |= {
        "encode_task_layer.0.weight": (H, H), "encode_task_layer.0.bias": (H,),
        "encode_task_layer.2.weight": (C, H), "encode_task_layer.2.bias": (C,),
        "quantize.embedding.weight": (K, C),
        "decode_task_layer.0.weight": (C, C), "decode_task_layer.0.bias": (C,),
        "decode_task_layer.2.weight": (H, C), "decode_task_layer.2.bias": (H,),
        "pos_embed_image": (1, 32, H),
    }
    for i in range(4):
        b = f"blocks_image.{i}."
        t |= {
            b + "norm1.weight": (H,), b + "norm1.bias": (H,),
            b + "attn.qkv.weight": (3 * H, H), b + "attn.qkv.bias": (3 * H,),
            b + "attn.proj.weight": (H, H), b + "attn.proj.bias": (H,),
            b + "norm2.weight": (H,), b + "norm2.bias": (H,),
            b + "mlp.fc1.weight": (F, H), b + "mlp.fc1.bias": (F,),
            b + "mlp.fc2.weight": (H, F), b + "mlp.fc2.bias": (H,),
        }
    t |= {
        "image_down.0.weight": (256, H), "image_down.2.weight": (128, 256), "image_down.4.weight": (32, 128),
        "distill_image_proj.weight": (1024, 32 * 32), "distill_image_proj.bias": (1024,),
    }
    return t


def test_seed_official_layout_names_and_shapes_pinned():
    model = Seed2Codec(config="official", device="meta")  # 1.1 B parameters, no memory
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    want = _official_table()
    assert sorted(set(got) - set(want)) == [] and sorted(set(want) - set(got)) == []
    assert {k: s for k, s in got.items() if s != want[k]} == {}
    assert sum(int(np.prod(s)) for s in got.values()) == 1_121_622_464
    assert list(model.buffers()) == []
    assert Seed2Config.from_dict(OFFICIAL.to_dict()) == OFFICIAL
    # The keys checkpoint.py drops really are absent from the model.
    for key in ("pos_embed", "blocks.3.mlp.fc2.bias", "Qformer.bert.embeddings.position_ids",
                "Qformer.bert.encoder.layer.5.output.dense.weight", "Qformer.cls.predictions.bias"):
        assert ckpt.is_unused(key) and key not in got
    assert not ckpt.is_unused("Qformer.bert.encoder.layer.5.attention.output.dense.weight")


# ---------------------------------------------------------------------------------------------
# Bad checkpoints: one-line BundleError naming the file


def _bad_files(tiny, tmp_path):
    state = tiny.state_dict()
    good = tmp_path / "good.pt"
    torch.save(state, good)
    data = good.read_bytes()

    def write(name, payload):
        p = tmp_path / name
        p.write_bytes(payload) if isinstance(payload, bytes) else torch.save(payload, p)
        return p

    return {
        "missing": (write("missing.pt", {k: v for k, v in state.items() if k != "quantize.embedding.weight"}),
                    "lacks 1 of the seed2 model's"),
        "unexpected": (write("unexpected.pt", {**state, "surprise.weight": torch.zeros(2)}), "surprise.weight"),
        "shape": (write("shape.pt", {**state, "quantize.embedding.weight": torch.zeros(8192, 7)}),
                  "quantize.embedding.weight has shape"),
        "corrupt": (write("corrupt.pt", os.urandom(4096)), "not a readable checkpoint"),
        "truncated": (write("truncated.pt", data[: len(data) // 2]), "not a readable checkpoint"),
        "empty": (write("empty.pt", b""), "empty file"),
        "corrupt safetensors": (write("corrupt.safetensors", os.urandom(64)), "not a readable checkpoint"),
        "pickled object": (write("object.pt", {"x": torch.zeros(1), "y": Image.new("RGB", (1, 1))}),
                           "pickles objects other than tensors"),
        "not a dict": (write("list.pt", [torch.zeros(1)]), "not a state dict"),
    }


def test_seed_bad_checkpoints_raise_one_line_bundle_error(tiny, tmp_path):
    for case, (path, message) in _bad_files(tiny, tmp_path).items():
        with pytest.raises(BundleError) as info:
            Seed2Codec(path=path, config="tiny")
        text = str(info.value)
        assert str(path) in text and message in text and "\n" not in text, (case, text)


def test_seed_missing_checkpoint_paths(tmp_path):
    with pytest.raises(BundleError, match="no seed_quantizer.pt"):
        Seed2Codec(path=tmp_path, config="tiny")
    with pytest.raises(BundleError, match="no such checkpoint"):
        Seed2Codec(path=tmp_path / "nowhere.pt", config="tiny")


# ---------------------------------------------------------------------------------------------
# Preprocessing: bicubic to a square (no crop), [0, 1], CLIP mean/std


def test_seed_preprocess_matches_hand_computation():
    # An image already 4x4: resizing is the identity, so this is the normalisation by hand.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    x = preprocess(Image.fromarray(pixels), 4)
    assert x.shape == (1, 3, 4, 4) and x.dtype == torch.float32
    for c in range(3):
        for i in range(4):
            for j in range(4):
                want = (pixels[i, j, c] / 255.0 - CLIP_MEAN[c]) / CLIP_STD[c]
                assert abs(float(x[0, c, i, j]) - want) < 1e-5
    # A flat colour stays flat through any resize: every pixel is the normalised colour.
    flat = preprocess(Image.new("RGB", (7, 5), (200, 100, 50)), 224)
    want = torch.tensor([(v / 255.0 - m) / s for v, m, s in zip((200, 100, 50), CLIP_MEAN, CLIP_STD)])
    assert flat.shape == (1, 3, 224, 224)
    assert torch.allclose(flat[0], want[:, None, None].expand(3, 224, 224), atol=1e-5)


def test_seed_preprocess_squashes_without_cropping():
    # 64x16, its left quarter red: squashed to 16x16 the red keeps the left 4 columns; a
    # resize-then-centre-crop would have cut it off.
    img = Image.new("RGB", (64, 16), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 16, 16))
    x = preprocess(img, 16)
    red = (1.0 - CLIP_MEAN[0]) / CLIP_STD[0]
    assert torch.allclose(x[0, 0, :, :3], torch.full((16, 3), red), atol=1e-5)
    assert float(x[0, 0, :, 8:].max()) < 0  # right side: no red
    ref = np.asarray(img.resize((16, 16), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    assert np.allclose(x[0].permute(1, 2, 0).numpy() * np.array(CLIP_STD) + np.array(CLIP_MEAN), ref, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Decoding: codes -> unCLIP embedding -> image


def test_seed_decoder_embedding_shape(tiny):
    codes = torch.arange(32)[None] * 7
    emb = tiny.embed_codes(codes)
    assert emb.shape == (1, 1024) and emb.dtype == torch.float32 and torch.isfinite(emb).all()
    assert not torch.allclose(emb, tiny.embed_codes(codes + 1))
    assert tiny.embed_codes(torch.cat([codes, codes + 1])).shape == (2, 1024)


@pytest.mark.parametrize(
    "codes, message",
    [
        (torch.zeros(1, 31, dtype=torch.long), "exactly 32 codes, this one holds 31"),
        (torch.zeros(1, 33, dtype=torch.long), "exactly 32 codes, this one holds 33"),
        (torch.zeros(2, 32, dtype=torch.long), "shape"),
        (torch.zeros(32, dtype=torch.long), "shape"),
        (torch.zeros(1, 32), "integers"),
        (torch.full((1, 32), 8192), "outside"),
        (torch.full((1, 32), -1), "outside"),
    ],
)
def test_seed_decode_rejects_bad_spans(tiny, codes, message):
    with pytest.raises(LayoutError, match=message):
        tiny.decode(codes)


def test_seed_decode_without_unclip_path_says_so(tiny):
    with pytest.raises(BundleError, match="unclip_path"):
        tiny.decode(torch.zeros(1, 32, dtype=torch.long))


@pytest.fixture(scope="module")
def tiny_unclip(tmp_path_factory):
    """A random-weight Stable unCLIP img2img pipeline (16x16 output), saved like the real folder."""
    return write_unclip(tmp_path_factory.mktemp("unclip") / "sd21-unclip")


def test_seed_unclip_decode_is_seeded_and_follows_codes(tiny_unclip):
    codec = Seed2Codec(config="tiny", unclip_path=str(tiny_unclip), num_inference_steps=2)
    codes = torch.arange(32)[None] * 5
    image = codec.decode(codes, seed=1)
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (16, 16)
    a = np.asarray(image, dtype=np.int16)
    assert np.array_equal(a, np.asarray(codec.decode(codes, seed=1), dtype=np.int16))  # same seed, same image
    assert np.abs(a - np.asarray(codec.decode(codes + 1, seed=1), dtype=np.int16)).mean() > 1  # codes matter
    assert np.abs(a - np.asarray(codec.decode(codes, seed=2), dtype=np.int16)).mean() > 1  # seed matters
    # No seed: fresh latents for every image (the release reused one latent tensor for all).
    x, y = (np.asarray(codec.decode(codes), dtype=np.int16) for _ in range(2))
    assert np.abs(x - y).mean() > 1
    assert codec.pipeline().image_encoder.dtype == torch.float32  # the stand-in, not the CLIP encoder


def test_seed_unclip_decode_rejects_wrong_folders(tiny_unclip, tmp_path):
    with pytest.raises(BundleError, match="no model_index.json"):
        Seed2Codec(config="tiny", unclip_path=str(tmp_path)).decode(torch.zeros(1, 32, dtype=torch.long))
    narrow = TINY.to_dict() | {"image_embed_dim": 512}
    with pytest.raises(BundleError, match="1024-d image embeddings, SEED-2 makes 512-d"):
        Seed2Codec(config=narrow, unclip_path=str(tiny_unclip)).decode(torch.zeros(1, 32, dtype=torch.long))


def test_seed_sampling_settings_are_checked():
    from anygpt.errors import AnyGPTError

    for bad in ({"num_inference_steps": 0}, {"noise_level": 1000}, {"height": 100}, {"guidance_scale": -1}):
        with pytest.raises(AnyGPTError, match="seed2 unCLIP sampling"):
            Seed2Codec(config="tiny", **bad)


def test_seed_network_is_blocked():
    with pytest.raises(OSError, match="network access in a test"):
        socket.create_connection(("huggingface.co", 443), timeout=1)
