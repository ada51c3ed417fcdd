"""The BLIP-2 Q-Former as SEED-2 uses it: 32 learned queries read the image, attending causally.

    queries (B, 32, 768) -> LayerNorm
      layer i: causal self-attention over the queries      (query j sees queries 0..j)
               cross-attention to the image tokens          (only when i % cross_attention_freq == 0)
               feed-forward (the query branch)
    -> (B, 32, 768)

Only the query path of BERT is built: the release deletes the word and position embeddings, the LM
head and every layer's text feed-forward (`intermediate`, `output`) before loading, and the queries
never meet text at tokenisation time. Module names follow the release's `Qformer.bert.*` so its
checkpoint loads as it is (hence an attribute called `self`, as in Hugging Face's BERT).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from anygpt.codecs.seed2.config import QFormerConfig
from anygpt.codecs.seed2.eva_vit import attention, split_heads


class BertProjections(nn.Module):
    """Query, key and value projections of one attention; keys and values may read another width."""

    def __init__(self, cfg: QFormerConfig, kv_width: int):
        super().__init__()
        self.num_heads = cfg.num_heads
        self.query = nn.Linear(cfg.hidden_size, cfg.hidden_size)
        self.key = nn.Linear(kv_width, cfg.hidden_size)
        self.value = nn.Linear(kv_width, cfg.hidden_size)

    def forward(self, x: torch.Tensor, context: torch.Tensor, causal: bool) -> torch.Tensor:
        h = self.num_heads
        q = split_heads(self.query(x), h)  # (B, heads, Tq, d)
        k = split_heads(self.key(context), h)  # (B, heads, Tk, d)
        v = split_heads(self.value(context), h)
        return attention(q, k, v, causal=causal)  # (B, Tq, hidden)


class BertResidual(nn.Module):
    """dense -> + residual -> LayerNorm (BERT is post-norm)."""

    def __init__(self, in_features: int, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(in_features, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dense(x) + residual)


class BertAttention(nn.Module):
    def __init__(self, cfg: QFormerConfig, kv_width: int):
        super().__init__()
        self.self = BertProjections(cfg, kv_width)
        self.output = BertResidual(cfg.hidden_size, cfg)

    def forward(self, x: torch.Tensor, context: torch.Tensor, causal: bool) -> torch.Tensor:
        return self.output(self.self(x, context, causal), x)


class BertIntermediate(nn.Module):
    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.dense = nn.Linear(cfg.hidden_size, cfg.intermediate_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.dense(x))  # BERT's "gelu": exact erf form


class BertLayer(nn.Module):
    def __init__(self, cfg: QFormerConfig, vision_width: int, index: int):
        super().__init__()
        self.attention = BertAttention(cfg, cfg.hidden_size)
        self.has_cross_attention = index % cfg.cross_attention_freq == 0
        if self.has_cross_attention:
            self.crossattention = BertAttention(cfg, vision_width)
        self.intermediate_query = BertIntermediate(cfg)
        self.output_query = BertResidual(cfg.intermediate_size, cfg)

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.attention(x, x, causal=True)
        if self.has_cross_attention:
            x = self.crossattention(x, image, causal=False)  # every query sees every image token
        return self.output_query(self.intermediate_query(x), x)


class BertEmbeddings(nn.Module):
    """With no text, BERT's embedding layer is only a LayerNorm over the query tokens."""

    def __init__(self, cfg: QFormerConfig):
        super().__init__()
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, queries: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(queries)


class BertEncoder(nn.Module):
    def __init__(self, cfg: QFormerConfig, vision_width: int):
        super().__init__()
        self.layer = nn.ModuleList(BertLayer(cfg, vision_width, i) for i in range(cfg.num_layers))


class BertQueryModel(nn.Module):
    def __init__(self, cfg: QFormerConfig, vision_width: int):
        super().__init__()
        self.embeddings = BertEmbeddings(cfg)
        self.encoder = BertEncoder(cfg, vision_width)

    def forward(self, queries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        x = self.embeddings(queries)
        for layer in self.encoder.layer:
            x = layer(x, image)
        return x


class QFormer(nn.Module):
    """(B, queries, hidden) query tokens and (B, T, vision_width) image tokens -> (B, queries, hidden)."""

    def __init__(self, cfg: QFormerConfig, vision_width: int):
        super().__init__()
        self.bert = BertQueryModel(cfg, vision_width)

    def forward(self, queries: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.bert(queries, image)
