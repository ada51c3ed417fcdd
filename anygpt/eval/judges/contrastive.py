"""Our CLIP-score and CLAP-score analogs: small contrastive media-text models trained here.

    clip_score(images, texts)        -> cosine of image and text embeddings, one per pair, in [-1, 1]
    clap_score(waveforms, texts, sample_rate) -> the same for music clips and their descriptions
    ContrastiveJudge.load("clip" | "clap").similarity(media_embeddings, text_embeddings) -> (N, M)

Text tower (both): words (digits split, "120" -> "1 2 0") -> embeddings (64) -> two 1-D convolutions
(widths 2 and 3 words, so "red star" binds colour to shape) -> max and mean over words -> 64-d.

Media towers are small MLPs over fixed, independent features:
    clip  image -> the frozen image judge's 9 per-cell hidden vectors and its global feature
          (image.py) -> MLP -> 64-d.  Scenes and captions are fresh renders (every colour-shape pair allowed).
    clap  clip  -> music_features (log-mel, chroma and onset statistics, music.py) -> MLP -> 64-d.
          Clips and captions are the world's music train split.

Both are trained with the symmetric InfoNCE loss of CLIP, a learnt temperature, and report
retrieval top-1 on held-out items: given a media item, is its own caption the most similar of all
the held-out items' captions (ties between identical captions count as right).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from anygpt.eval.judges.checkpoint import load_module
from anygpt.eval.judges.image import ImageJudge, images_to_tensor
from anygpt.eval.judges.music import music_features, to_feature_rate

WEIGHTS = {"clip": "clip_analog.safetensors", "clap": "clap_analog.safetensors"}
PAD, UNK = "<pad>", "<unk>"
MAX_WORDS = 48


def words(text: str) -> list[str]:
    """Lower-case words; numbers spelt digit by digit so any tempo reads without an unknown word."""
    return re.findall(r"[a-z]+|[0-9]", text.lower())[:MAX_WORDS]


def build_vocab(texts: list[str], min_count: int = 1) -> list[str]:
    counts = Counter(w for t in texts for w in words(t))
    return [PAD, UNK] + sorted(w for w, c in counts.items() if c >= min_count)


def encode_texts(texts: list[str], vocab: list[str]):
    """(B, L) word ids, 0-padded to the longest text."""
    import torch

    index = {w: i for i, w in enumerate(vocab)}
    ids = [[index.get(w, 1) for w in words(t)] or [1] for t in texts]
    out = torch.zeros((len(ids), max(len(x) for x in ids)), dtype=torch.long)
    for i, x in enumerate(ids):
        out[i, :len(x)] = torch.tensor(x)
    return out


@dataclass(frozen=True)
class ContrastiveConfig:
    kind: str = "clip"  # "clip" or "clap": which media tower
    media_dim: int = 480  # input feature size of the media tower
    vocab_size: int = 2
    width: int = 64  # word embedding and joint embedding size
    hidden: int = 256


def build_contrastive(config: ContrastiveConfig):
    import torch
    import torch.nn.functional as F
    from torch import nn

    class TextTower(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(config.vocab_size, config.width, padding_idx=0)
            self.conv2 = nn.Conv1d(config.width, config.hidden // 2, 2, padding=1)
            self.conv3 = nn.Conv1d(config.width, config.hidden // 2, 3, padding=1)
            self.out = nn.Linear(2 * config.hidden, config.width)

        def forward(self, ids):  # (B, L) -> (B, width), unit norm
            mask = (ids != 0).float()[:, None, :]  # (B, 1, L)
            x = self.embed(ids).transpose(1, 2)  # (B, width, L)
            h = torch.cat([F.gelu(self.conv2(x))[..., :-1], F.gelu(self.conv3(x))], dim=1)  # (B, hidden, L)
            h_max = (h - 1e4 * (1 - mask)).amax(-1)
            h_mean = (h * mask).sum(-1) / mask.sum(-1).clamp(min=1)
            return F.normalize(self.out(torch.cat([h_max, h_mean], -1)), dim=-1)

    class Contrastive(nn.Module):
        def __init__(self):
            super().__init__()
            self.media = nn.Sequential(nn.LayerNorm(config.media_dim), nn.Linear(config.media_dim, config.hidden),
                                       nn.GELU(), nn.Linear(config.hidden, config.width))
            self.text = TextTower()
            self.log_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

        def embed_media(self, features):  # (B, media_dim) -> (B, width), unit norm
            return F.normalize(self.media(features), dim=-1)

        def loss(self, features, ids):
            m, t = self.embed_media(features), self.text(ids)
            logits = self.log_scale.exp().clamp(max=100) * m @ t.T  # (B, B)
            target = torch.arange(len(m))
            return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2

    return Contrastive()


class ContrastiveJudge:
    def __init__(self, model, config: ContrastiveConfig, vocab: list[str], image_judge=None):
        """image_judge: the ImageJudge whose features the clip tower reads (None: the shipped one, loaded
        when first needed)."""
        self.model, self.config, self.vocab = model.eval(), config, vocab
        self._image_judge = image_judge

    @classmethod
    def load(cls, kind: str, folder=None, image_judge=None) -> ContrastiveJudge:
        if kind not in WEIGHTS:
            raise ValueError(f"unknown contrastive judge {kind!r}: choose from {', '.join(WEIGHTS)}")
        model, config, extra = load_module(WEIGHTS[kind], ContrastiveConfig, build_contrastive, folder)
        return cls(model, config, extra["vocab"], image_judge)

    def media_features(self, media, sample_rate: int | None = None):
        """Images (clip) or waveforms at sample_rate (clap) -> (B, media_dim) input features."""
        import torch

        if self.config.kind == "clip":
            if self._image_judge is None:
                self._image_judge = ImageJudge.load()
            return image_features(self._image_judge.model, media)
        if sample_rate is None:
            raise ValueError("clap needs the waveforms' sample_rate")
        return torch.from_numpy(np.stack([music_features(to_feature_rate(w, sample_rate)) for w in media]))

    def embed_media(self, media, sample_rate: int | None = None):
        import torch

        with torch.inference_mode():
            return self.model.embed_media(self.media_features(media, sample_rate))

    def embed_texts(self, texts: list[str]):
        import torch

        with torch.inference_mode():
            return self.model.text(encode_texts(texts, self.vocab))

    def score(self, media, texts: list[str], sample_rate: int | None = None) -> list[float]:
        if len(media) != len(texts):
            raise ValueError(f"{len(media)} media items for {len(texts)} texts")
        m, t = self.embed_media(media, sample_rate), self.embed_texts(texts)
        return (m * t).sum(-1).tolist()


def image_features(image_model, images, batch_size: int = 256):
    """The frozen image judge's per-cell hidden and global features, flattened: (B, 9 * hidden + C)."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            x = batch if isinstance(batch, torch.Tensor) else images_to_tensor(batch)
            cells, pooled = image_model.features(x)
            out.append(torch.cat([cells.flatten(1), pooled], dim=-1))
    return torch.cat(out)


def retrieval_top1(media_embeddings, text_embeddings, captions: list[str]) -> float:
    """Fraction of media items whose most similar text (among all items' texts) is their own caption
    (or an identical string: clips cut from one rendering share their captions)."""
    sims = media_embeddings @ text_embeddings.T  # (N, N)
    best = sims.argmax(-1).tolist()
    return float(np.mean([captions[j] == captions[i] for i, j in enumerate(best)]))


def clip_score(images, texts: list[str], judge: ContrastiveJudge | None = None) -> list[float]:
    return (judge or ContrastiveJudge.load("clip")).score(images, texts)


def clap_score(waveforms, texts: list[str], sample_rate: int, judge: ContrastiveJudge | None = None) -> list[float]:
    return (judge or ContrastiveJudge.load("clap")).score(waveforms, texts, sample_rate)
