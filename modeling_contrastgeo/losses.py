"""ContrastGeo's training losses, in the style of open_clip's ``loss.py``, and the distributed gathering and input
checks that ``csp_losses.py`` shares.

- :func:`tlc_loss`: Tweet-Location Contrastive loss (ContrastGeo, Li & Lim 2024): posts against candidate places.
- :func:`sample_hard_negatives` + :func:`tlm_loss`: Tweet-Location Matching with online hard negatives (ALBEF style).
- :func:`gather_with_grad`: all-gather so that 2 processes see the negatives 1 process sees with twice the batch.

Distributed convention (used by ``csp_losses.csp_loss``, and by callers that gather TLC candidates): every process
computes the loss of its *own* rows against the *gathered* rows of all processes, and the all-gather's backward sums the
gradients that every process sends to a shard. With ``world_size`` processes holding equal shards, the mean of the
per-process losses equals the one-process loss on the whole batch, and the gradient a process gets for its local
embeddings is ``world_size`` times the matching slice of the one-process gradient; DDP's averaging of parameter
gradients over ``world_size`` processes divides that factor back out, so training matches one process exactly.
"""

import math
import operator
from typing import Optional, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F


def _world_size_and_rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _gather_with_offset(tensor: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather ``tensor`` along dim 0 keeping its gradient; also return where this process's rows start."""
    world_size, rank = _world_size_and_rank()
    if world_size == 1:
        return tensor, 0
    # Imported lazily: torch builds without distributed support lack this module.
    from torch.distributed.nn.functional import all_gather as all_gather_with_grad

    local_size = torch.tensor([tensor.shape[0]], device=tensor.device, dtype=torch.long)
    all_sizes = [torch.zeros_like(local_size) for _ in range(world_size)]
    dist.all_gather(all_sizes, local_size)
    sizes = [int(size.item()) for size in all_sizes]
    # all_gather needs equal shapes; a last batch that does not split evenly is padded and the padding cut out again,
    # so no process's rows are dropped.
    max_size = max(sizes)
    if tensor.shape[0] < max_size:
        padding = tensor.new_zeros((max_size - tensor.shape[0], *tensor.shape[1:]))
        tensor = torch.cat([tensor, padding], dim=0)
    shards = all_gather_with_grad(tensor)
    gathered = torch.cat([shard[:size] for shard, size in zip(shards, sizes)], dim=0)
    return gathered, sum(sizes[:rank])


def gather_with_grad(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate ``tensor`` (rows along dim 0) from every process, in rank order, keeping the gradient.

    The backward pass sums, for each process's shard, the gradients that all processes computed for it (see the
    module docstring for the resulting world-size scaling). Processes may hold different numbers of rows. Identity
    when ``torch.distributed`` is unavailable, not initialised, or has a single process.
    """
    if tensor.dim() == 0:
        raise ValueError("gather_with_grad needs a tensor with at least one dimension (rows along dim 0), got a scalar")
    return _gather_with_offset(tensor)[0]


def _check_embeddings(embeds: torch.Tensor, name: str) -> None:
    if embeds.dim() != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(embeds.shape)}")
    if not embeds.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {embeds.dtype}")
    if embeds.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(embeds.shape)})")


def _check_same_dim(first: torch.Tensor, first_name: str, second: torch.Tensor, second_name: str) -> None:
    if first.shape[-1] != second.shape[-1]:
        raise ValueError(f"{first_name} has embedding size {first.shape[-1]} but {second_name} has {second.shape[-1]}")


def _as_count(value, name: str) -> int:
    """``value`` as a non-negative int (Python or NumPy int, integer 0-d tensor); ValueError otherwise."""
    try:
        count = operator.index(value)
    except TypeError:
        count = -1
    if isinstance(value, bool) or count < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    return count


def _check_labels(labels: torch.Tensor, num_rows: int, num_classes: int, name: str, classes: str) -> None:
    if labels.dim() != 1 or labels.shape[0] != num_rows:
        raise ValueError(f"{name} must have shape ({num_rows},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor, got {labels.dtype}")
    out_of_range = (labels < 0) | (labels >= num_classes)
    if out_of_range.any():
        index = int(out_of_range.nonzero()[0, 0])
        raise ValueError(
            f"{name}[{index}] = {int(labels[index])} is outside [0, {num_classes}) (the number of {classes})"
        )


def tlc_loss(
    post_embeds: torch.Tensor,
    location_embeds: torch.Tensor,
    labels: torch.Tensor,
    logit_scale: Union[torch.Tensor, float],
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Tweet-Location Contrastive loss: cross-entropy of each post over the candidate places.

    Args:
        post_embeds: (B, D) post embeddings.
        location_embeds: (C, D) embeddings of the candidate places. In distributed training where each process
            encodes a different share of the candidates, pass ``gather_with_grad(location_embeds)`` and labels that
            index the gathered list; a gallery that is identical on every process must not be gathered.
        labels: (B,) index of each post's true place in ``location_embeds``.
        logit_scale: inverse temperature, already exponentiated (a scalar tensor or a float).
        label_smoothing: passed to ``torch.nn.functional.cross_entropy``.

    Both embeddings are L2-normalised here. Returns ``(loss, logits_per_post)`` with logits_per_post of shape (B, C).
    """
    _check_embeddings(post_embeds, "post_embeds")
    _check_embeddings(location_embeds, "location_embeds")
    _check_same_dim(post_embeds, "post_embeds", location_embeds, "location_embeds")
    _check_labels(labels, post_embeds.shape[0], location_embeds.shape[0], "labels", "candidate places")
    if torch.is_tensor(logit_scale) and logit_scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar, got shape {tuple(logit_scale.shape)}")
    if not 0.0 <= label_smoothing < 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
    post_embeds = F.normalize(post_embeds, dim=-1)
    location_embeds = F.normalize(location_embeds, dim=-1)
    logits_per_post = logit_scale * post_embeds @ location_embeds.T
    loss = F.cross_entropy(logits_per_post, labels, label_smoothing=label_smoothing)
    return loss, logits_per_post


@torch.no_grad()
def sample_hard_negatives(
    similarity: torch.Tensor,
    positive_mask: torch.Tensor,
    num_negatives: int,
    strategy: str = "multinomial",
    generator: Optional[torch.Generator] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw, for each post, ``num_negatives`` hard negative places (ALBEF-style online hard-negative mining).

    Args:
        similarity: (B, C) post-place scores, typically ``logits_per_post``; the sampling distribution is
            ``softmax(similarity)`` over the non-positive places, so the logit scale sets how peaked it is.
            ``-inf`` marks a place that must never be drawn; NaN and ``+inf`` are rejected.
        positive_mask: (B, C) bool, True for the post's true place and for every place equal to it; these are never
            drawn as negatives.
        num_negatives: k, the number of negatives per post.
        strategy: ``"multinomial"`` draws without replacement with probability ``softmax(similarity)``;
            ``"topk"`` takes the k highest-scoring negatives.
        generator: random generator for ``"multinomial"`` (on ``similarity``'s device).

    Returns:
        ``(negative_indices, negative_valid)``, both (B, k): indices into the C places (always in range) and whether
        the slot holds a real negative. A row with fewer than k drawable negatives (all places positive, k > C, ...)
        has its remaining slots marked invalid; a positive is never marked valid.

    ``"multinomial"`` uses the Gumbel-top-k trick (top-k of ``similarity + Gumbel noise``), which has exactly the
    distribution of ``torch.multinomial(softmax(similarity), k, replacement=False)`` but works in log space: no NaN
    from an all-masked row and no failure when fewer than k places have a non-zero softmax weight.
    """
    if similarity.dim() != 2:
        raise ValueError(f"similarity must have shape (B, C), got {tuple(similarity.shape)}")
    if not similarity.is_floating_point():
        raise ValueError(f"similarity must be a floating-point tensor, got {similarity.dtype}")
    if positive_mask.shape != similarity.shape or positive_mask.dtype != torch.bool:
        raise ValueError(
            f"positive_mask must be a bool tensor of shape {tuple(similarity.shape)}, "
            f"got {positive_mask.dtype} of shape {tuple(positive_mask.shape)}"
        )
    num_negatives = _as_count(num_negatives, "num_negatives")
    if strategy not in ("multinomial", "topk"):
        raise ValueError(f"strategy must be 'multinomial' or 'topk', got {strategy!r}")
    num_posts, num_candidates = similarity.shape
    if num_candidates == 0 and num_negatives > 0:
        raise ValueError("similarity has no candidate places (C = 0), so no negative can be drawn")
    bad_scores = similarity.isnan() | (similarity == float("inf"))
    if bad_scores.any():
        row, column = (int(value) for value in bad_scores.nonzero()[0])
        raise ValueError(
            f"similarity[{row}, {column}] = {float(similarity[row, column])}; scores must not be NaN or +inf"
        )

    scores = similarity.detach().to(torch.float64 if similarity.dtype == torch.float64 else torch.float32)
    drawable = ~positive_mask & (scores > float("-inf"))
    if strategy == "multinomial":
        uniform = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=scores.dtype)
        # u = 0 would give a -inf key, which reads as "never draw"; clamp it away.
        uniform = uniform.clamp_(min=torch.finfo(scores.dtype).tiny)
        scores = scores - torch.log(-torch.log(uniform))
    scores = scores.masked_fill(~drawable, float("-inf"))

    num_drawn = min(num_negatives, num_candidates)
    negative_indices = scores.topk(num_drawn, dim=1).indices
    negative_valid = torch.gather(drawable, 1, negative_indices)
    if num_drawn < num_negatives:
        missing = num_negatives - num_drawn
        negative_indices = torch.cat([negative_indices, negative_indices.new_zeros((num_posts, missing))], dim=1)
        negative_valid = torch.cat([negative_valid, negative_valid.new_zeros((num_posts, missing))], dim=1)
    return negative_indices, negative_valid


def tlm_loss(
    positive_match_logits: torch.Tensor,
    negative_match_logits: torch.Tensor,
    negative_valid: torch.Tensor,
) -> torch.Tensor:
    """Tweet-Location Matching loss: binary cross-entropy (as 2-way softmax) over matched and mismatched pairs.

    Args:
        positive_match_logits: (B, 2) match-head logits for each post with its true place (target class 1 = match).
        negative_match_logits: (B, k, 2) logits for each post with its k sampled negatives (target class 0).
        negative_valid: (B, k) bool from :func:`sample_hard_negatives`; invalid slots are left out entirely.

    Returns the mean over the B positive pairs and the valid negative pairs.
    """
    if positive_match_logits.dim() != 2 or positive_match_logits.shape[1] != 2:
        raise ValueError(f"positive_match_logits must have shape (B, 2), got {tuple(positive_match_logits.shape)}")
    num_posts = positive_match_logits.shape[0]
    if num_posts == 0:
        raise ValueError("positive_match_logits is empty (B = 0)")
    if negative_match_logits.dim() != 3 or negative_match_logits.shape[::2] != (num_posts, 2):
        raise ValueError(
            f"negative_match_logits must have shape ({num_posts}, k, 2), got {tuple(negative_match_logits.shape)}"
        )
    if negative_valid.shape != negative_match_logits.shape[:2] or negative_valid.dtype != torch.bool:
        raise ValueError(
            f"negative_valid must be a bool tensor of shape {tuple(negative_match_logits.shape[:2])}, "
            f"got {negative_valid.dtype} of shape {tuple(negative_valid.shape)}"
        )
    # Boolean indexing rather than multiplying by a 0/1 mask: an invalid slot's logits never enter the graph, so even
    # a non-finite value there cannot turn the gradient into NaN.
    used_negative_logits = negative_match_logits[negative_valid]
    match = torch.ones(num_posts, dtype=torch.long, device=positive_match_logits.device)
    mismatch = torch.zeros(used_negative_logits.shape[0], dtype=torch.long, device=positive_match_logits.device)
    positive_loss = F.cross_entropy(positive_match_logits, match, reduction="sum")
    negative_loss = F.cross_entropy(used_negative_logits, mismatch, reduction="sum")
    return (positive_loss + negative_loss) / (num_posts + used_negative_logits.shape[0])


def tlm_constant_predictor_entropy(num_positive: int, num_negative: int) -> float:
    """The TLM loss (nats) of a match head that ignores its input and always predicts the class ratio.

    With 1 positive and k negatives per post, a head that has learned nothing about whether a post and a place match
    still reaches ``H(p) = -p log p - (1 - p) log(1 - p)`` with ``p = num_positive / (num_positive + num_negative)``
    (0.41 for k = 6) just by predicting p everywhere. A TLM loss that settles at this value is a bug signal, e.g. a
    fusion whose output does not depend on the post; callers compare against it to warn.
    """
    num_positive, num_negative = _as_count(num_positive, "num_positive"), _as_count(num_negative, "num_negative")
    if num_positive + num_negative == 0:
        raise ValueError("num_positive and num_negative must not both be 0")
    positive_rate = num_positive / (num_positive + num_negative)
    return -sum(rate * math.log(rate) for rate in (positive_rate, 1.0 - positive_rate) if rate > 0.0)
