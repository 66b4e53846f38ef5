"""Tweet-Location Matching (TLM) heads: fuse a post with candidate places and score the pair (match / no match).

Every head takes a batch of B posts, each with P candidate places, and returns match logits of shape (B, P, 2)
(class 1 = "this post was written at this place"). Three fusion strategies, as in ContrastGeo:

- `sum`:   post_embed + location_embed
- `concat`: Linear([post_embed; location_embed])
- `cross_attention`: the post's token states attend over the place's tokens (prompt token states and tokens made
  from the location embedding). The place always offers several tokens: attention over a single key/value vector
  is constant (softmax over one key is 1), so the output would ignore the post.

Each is followed by a small fusion encoder (`mlp`, `adapter` or one `transformer` layer) and a Linear(., 2) head.
"""

import math

import torch
from torch import nn


class ResidualMLP(nn.Module):
    """Pre-norm residual feed-forward block (expansion 2x)."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.feed_forward(self.norm(hidden))


class Adapter(nn.Module):
    """Bottleneck adapter (Houlsby et al. 2019): cheap residual down/up projection."""

    def __init__(self, dim: int, dropout: float = 0.1):
        super().__init__()
        bottleneck = max(dim // 4, 8)
        self.norm = nn.LayerNorm(dim)
        self.down = nn.Linear(dim, bottleneck)
        self.up = nn.Linear(bottleneck, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.up(self.dropout(nn.functional.gelu(self.down(self.norm(hidden)))))


class TransformerFusionLayer(nn.Module):
    """One pre-norm transformer encoder layer over a token sequence (vectors are a sequence of length one)."""

    def __init__(self, dim: int, num_heads: int, dropout: float = 0.1):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(
            d_model=dim, nhead=num_heads, dim_feedforward=2 * dim, dropout=dropout, batch_first=True, norm_first=True
        )

    def forward(self, hidden: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        if hidden.dim() == 2:
            return self.layer(hidden.unsqueeze(1)).squeeze(1)
        return self.layer(hidden, src_key_padding_mask=padding_mask)


def build_fusion_encoder(kind: str, dim: int, num_heads: int, dropout: float) -> nn.Module:
    if kind == "mlp":
        return ResidualMLP(dim, dropout)
    if kind == "adapter":
        return Adapter(dim, dropout)
    if kind == "transformer":
        return TransformerFusionLayer(dim, num_heads, dropout)
    raise ValueError(f"unknown fusion encoder {kind!r}; expected 'mlp', 'adapter' or 'transformer'")


def _largest_divisor_at_most(dim: int, limit: int) -> int:
    return max(d for d in range(1, limit + 1) if dim % d == 0)


class VectorFusionHead(nn.Module):
    """`sum` or `concat` fusion of the pooled post and location embeddings."""

    def __init__(self, strategy: str, embed_dim: int, fusion_encoder: str, dropout: float = 0.1):
        super().__init__()
        self.strategy = strategy
        self.concat_projection = nn.Linear(2 * embed_dim, embed_dim) if strategy == "concat" else None
        num_heads = _largest_divisor_at_most(embed_dim, 8)
        self.encoder = build_fusion_encoder(fusion_encoder, embed_dim, num_heads, dropout)
        self.norm = nn.LayerNorm(embed_dim)
        self.classifier = nn.Linear(embed_dim, 2)

    def forward(self, post_embeds, location_embeds, **unused_token_inputs) -> torch.Tensor:
        expanded_posts = post_embeds.unsqueeze(1).expand_as(location_embeds)
        if self.concat_projection is not None:
            fused = self.concat_projection(torch.cat([expanded_posts, location_embeds], dim=-1))
        else:
            fused = expanded_posts + location_embeds
        batch, num_candidates, dim = fused.shape
        fused = self.encoder(fused.reshape(batch * num_candidates, dim))
        return self.classifier(self.norm(fused)).reshape(batch, num_candidates, 2)


class CrossAttentionFusionHead(nn.Module):
    """Post token states (queries) attend over each candidate place's tokens (keys/values).

    The query projection of the post tokens is computed once per post and shared by its P candidates, and the
    output projection is applied to the (few) value vectors before mixing, which is the same linear map but costs
    O(place tokens) instead of O(post tokens) per candidate.
    """

    def __init__(self, hidden_size: int, embed_dim: int, num_heads: int, num_location_tokens: int,
                 fusion_encoder: str, dropout: float = 0.1):
        super().__init__()
        if num_location_tokens < 2:
            raise ValueError("cross_attention fusion needs num_location_tokens >= 2 (one key/value ignores the post)")
        self.hidden_size = hidden_size
        self.num_heads = _largest_divisor_at_most(hidden_size, num_heads)
        self.head_dim = hidden_size // self.num_heads
        self.num_location_tokens = num_location_tokens
        self.location_to_tokens = nn.Linear(embed_dim, num_location_tokens * hidden_size)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)
        self.output = nn.Linear(hidden_size, hidden_size)
        self.attention_dropout = nn.Dropout(dropout)
        self.fused_norm = nn.LayerNorm(hidden_size)
        self.encoder_kind = fusion_encoder
        self.encoder = build_fusion_encoder(fusion_encoder, hidden_size, self.num_heads, dropout)
        self.norm = nn.LayerNorm(hidden_size)
        self.classifier = nn.Linear(hidden_size, 2)

    def _place_tokens(self, location_embeds, location_token_states, location_attention_mask):
        batch, num_candidates, _ = location_embeds.shape
        tokens = self.location_to_tokens(location_embeds).reshape(
            batch, num_candidates, self.num_location_tokens, self.hidden_size
        )
        mask = torch.ones(tokens.shape[:3], dtype=torch.bool, device=tokens.device)
        if location_token_states is not None:
            if location_attention_mask is None:
                location_attention_mask = torch.ones(location_token_states.shape[:3], device=tokens.device)
            tokens = torch.cat([location_token_states.to(tokens.dtype), tokens], dim=2)
            mask = torch.cat([location_attention_mask.bool(), mask], dim=2)
        return tokens, mask

    def forward(self, post_embeds, location_embeds, post_token_states=None, post_attention_mask=None,
                location_token_states=None, location_attention_mask=None) -> torch.Tensor:
        if post_token_states is None:
            raise ValueError("cross_attention fusion needs the post token states")
        batch, num_candidates, _ = location_embeds.shape
        post_length = post_token_states.shape[1]
        if post_attention_mask is None:
            post_attention_mask = torch.ones(post_token_states.shape[:2], device=post_token_states.device)
        place_tokens, place_mask = self._place_tokens(location_embeds, location_token_states, location_attention_mask)

        def split_heads(states):
            return states.reshape(*states.shape[:-1], self.num_heads, self.head_dim).transpose(-2, -3)

        queries = split_heads(self.query(post_token_states))  # (B, h, Lp, d)
        keys = split_heads(self.key(place_tokens))  # (B, P, h, Lq, d)
        # Output projection folded into the values: W_o(sum_j a_j v_j) = sum_j a_j W_o_h(v_j) per head.
        values = split_heads(self.value(place_tokens))  # (B, P, h, Lq, d)
        output_weight = self.output.weight.reshape(self.hidden_size, self.num_heads, self.head_dim)
        projected_values = torch.einsum("bphld,ohd->bphlo", values, output_weight)  # (B, P, h, Lq, H)

        scores = torch.einsum("bhqd,bphkd->bphqk", queries, keys) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~place_mask[:, :, None, None, :], torch.finfo(scores.dtype).min)
        attention = self.attention_dropout(scores.softmax(dim=-1))  # (B, P, h, Lp, Lq)
        attended = torch.einsum("bphqk,bphko->bpqo", attention, projected_values) + self.output.bias
        fused = self.fused_norm(post_token_states.unsqueeze(1) + attended)  # (B, P, Lp, H)

        token_mask = post_attention_mask.to(fused.dtype)[:, None, :, None]  # (B, 1, Lp, 1)
        if self.encoder_kind == "transformer":
            flat = fused.reshape(batch * num_candidates, post_length, self.hidden_size)
            padding = ~post_attention_mask.bool().repeat_interleave(num_candidates, dim=0)
            fused = self.encoder(flat, padding).reshape(batch, num_candidates, post_length, self.hidden_size)
            pooled = (fused * token_mask).sum(2) / token_mask.sum(2).clamp_min(1.0)
        else:
            pooled = (fused * token_mask).sum(2) / token_mask.sum(2).clamp_min(1.0)
            pooled = self.encoder(pooled)
        return self.classifier(self.norm(pooled))


def build_matching_head(config) -> nn.Module:
    """The TLM head described by a `ContrastGeoConfig`."""
    dropout = getattr(config.text_config, "hidden_dropout_prob", 0.1)
    if config.tlm_fusion == "cross_attention":
        return CrossAttentionFusionHead(
            hidden_size=config.text_config.hidden_size,
            embed_dim=config.embed_dim,
            num_heads=getattr(config.text_config, "num_attention_heads", 8),
            num_location_tokens=config.num_location_tokens,
            fusion_encoder=config.fusion_encoder,
            dropout=dropout,
        )
    return VectorFusionHead(config.tlm_fusion, config.embed_dim, config.fusion_encoder, dropout)
