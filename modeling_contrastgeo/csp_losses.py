"""CSP's training losses, in the style of open_clip's ``loss.py``.

- :func:`csp_loss`: CSP's self-supervised location pre-training (Mai et al. 2023): in-batch (B), random-location (L)
  and SimCSE dropout-view (D) terms, gathered across processes by the convention of ``losses.py``.
- :func:`sample_uniform_sphere`: the random locations of the L term.
- :func:`presence_absence_loss`: the "full assume negative" loss of Mac Aodha et al. 2019 for CSP's location prior.
"""

from typing import Optional, Union

import torch
import torch.nn.functional as F

from .losses import _as_count, _check_embeddings, _check_labels, _check_same_dim, _gather_with_offset


def sample_uniform_sphere(
    num_locations: int,
    generator: Optional[torch.Generator] = None,
    device: Optional[Union[torch.device, str]] = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Sample locations uniformly on the sphere; returns latlon (N, 2) degrees [latitude, longitude].

    Latitude is ``degrees(asin(2u - 1))`` (area-uniform: its density is proportional to cos(latitude)), not uniform in
    degrees, which would crowd the poles; longitude is uniform in [-180, 180).
    """
    num_locations = _as_count(num_locations, "num_locations")
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point dtype, got {dtype}")
    # Draw in at least float32 so half-precision rounding does not bunch the samples.
    sample_dtype = torch.float64 if dtype == torch.float64 else torch.float32
    uniform = torch.rand((num_locations, 2), generator=generator, device=device, dtype=sample_dtype)
    latitude = torch.rad2deg(torch.asin(2.0 * uniform[:, 0] - 1.0))
    longitude = 360.0 * uniform[:, 1] - 180.0
    latlon = torch.stack([latitude, longitude], dim=1).to(dtype)
    # Rounding to a coarser dtype can turn 179.99... into 180; wrap it so longitude stays in [-180, 180).
    latlon[:, 1] = torch.where(latlon[:, 1] >= 180.0, latlon[:, 1] - 360.0, latlon[:, 1])
    return latlon


def _gathered_info_nce(queries: torch.Tensor, keys: torch.Tensor, temperature: float) -> torch.Tensor:
    """InfoNCE of this process's queries over the keys of all processes; a query's positive is the key of its row."""
    all_keys, offset = _gather_with_offset(keys)
    targets = torch.arange(offset, offset + queries.shape[0], device=queries.device)
    return F.cross_entropy(queries @ all_keys.T / temperature, targets)


def csp_loss(
    location_embeds: torch.Tensor,
    content_embeds: torch.Tensor,
    random_location_embeds: Optional[torch.Tensor] = None,
    location_embeds_second_view: Optional[torch.Tensor] = None,
    in_batch_weight: Optional[float] = 1.0,
    random_location_weight: Optional[float] = 1.0,
    dropout_view_weight: Optional[float] = 1.0,
    in_batch_temperature: float = 0.1,
    random_location_temperature: float = 0.1,
    dropout_view_temperature: float = 0.1,
) -> dict[str, Optional[torch.Tensor]]:
    """CSP's self-supervised loss for pre-training a location encoder against (frozen) content embeddings.

    Args:
        location_embeds: (B, D) location-encoder outputs for the batch's locations.
        content_embeds: (B, D) content embeddings (text or image) of the same rows.
        random_location_embeds: (R, D) embeddings of random locations (see :func:`sample_uniform_sphere`), or None.
        location_embeds_second_view: (B, D) the batch's locations encoded a second time (different dropout), or None.
        in_batch_weight, random_location_weight, dropout_view_weight: weight of each term; 0 or None skips it.
        in_batch_temperature, random_location_temperature, dropout_view_temperature: each term's temperature.

    Terms (all embeddings are L2-normalised first, logits are cosine / temperature):
        - B, in-batch: symmetric InfoNCE; each location's positive is its own content and the other rows' contents
          are the negatives, and vice versa; the mean of both directions. Rows are gathered across processes with
          :func:`.losses.gather_with_grad`.
        - L, random location: for each content, its location is the positive and the R random locations are the
          negatives (one (1 + R)-way cross-entropy); these negatives add to those of term B.
        - D, dropout view (SimCSE): each location's first view against all second views; its own second view is the
          positive. Second views are gathered across processes like term B.
    Each term is a mean over the rows of this process.

    Returns ``dict(loss, loss_in_batch, loss_random_location, loss_dropout_view)``: ``loss`` is the weighted sum; a
    skipped term (weight 0 or None, or its input None) is reported as None, not as 0, since it was not computed.
    """
    _check_embeddings(location_embeds, "location_embeds")
    _check_embeddings(content_embeds, "content_embeds")
    second_view = location_embeds_second_view
    for name, embeds in (("content_embeds", content_embeds), ("location_embeds_second_view", second_view)):
        if embeds is not None and embeds.shape != location_embeds.shape:
            raise ValueError(
                f"{name} must have the shape of location_embeds {tuple(location_embeds.shape)}, "
                f"got {tuple(embeds.shape)}"
            )
    if random_location_embeds is not None:
        _check_embeddings(random_location_embeds, "random_location_embeds")
        _check_same_dim(random_location_embeds, "random_location_embeds", location_embeds, "location_embeds")
    for term, weight, temperature in (
        ("in_batch", in_batch_weight, in_batch_temperature),
        ("random_location", random_location_weight, random_location_temperature),
        ("dropout_view", dropout_view_weight, dropout_view_temperature),
    ):
        if weight is not None and weight < 0:
            raise ValueError(f"{term}_weight must be >= 0 (or None to skip the term), got {weight}")
        if not temperature > 0:
            raise ValueError(f"{term}_temperature must be > 0, got {temperature}")

    location_embeds = F.normalize(location_embeds, dim=-1)
    content_embeds = F.normalize(content_embeds, dim=-1)
    weighted_terms = []

    loss_in_batch = None
    if in_batch_weight:
        loss_in_batch = (
            _gathered_info_nce(location_embeds, content_embeds, in_batch_temperature)
            + _gathered_info_nce(content_embeds, location_embeds, in_batch_temperature)
        ) / 2
        weighted_terms.append(in_batch_weight * loss_in_batch)

    loss_random_location = None
    if random_location_weight and random_location_embeds is not None:
        random_location_embeds = F.normalize(random_location_embeds, dim=-1)
        positive_logits = (content_embeds * location_embeds).sum(dim=-1, keepdim=True)
        negative_logits = content_embeds @ random_location_embeds.T
        logits = torch.cat([positive_logits, negative_logits], dim=1) / random_location_temperature
        targets = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        loss_random_location = F.cross_entropy(logits, targets)
        weighted_terms.append(random_location_weight * loss_random_location)

    loss_dropout_view = None
    if dropout_view_weight and second_view is not None:
        second_view = F.normalize(second_view, dim=-1)
        loss_dropout_view = _gathered_info_nce(location_embeds, second_view, dropout_view_temperature)
        weighted_terms.append(dropout_view_weight * loss_dropout_view)

    if not weighted_terms:
        raise ValueError(
            "every CSP loss term is skipped: give a positive in_batch_weight, or a positive weight together with "
            "random_location_embeds or location_embeds_second_view"
        )
    return {
        "loss": sum(weighted_terms),
        "loss_in_batch": loss_in_batch,
        "loss_random_location": loss_random_location,
        "loss_dropout_view": loss_dropout_view,
    }


def presence_absence_loss(
    location_logits: torch.Tensor,
    labels: torch.Tensor,
    random_location_logits: Optional[torch.Tensor] = None,
    positive_weight: float = 2048.0,
) -> torch.Tensor:
    """The "full assume negative" presence/absence loss (Mac Aodha et al. 2019) for CSP's location prior.

    Args:
        location_logits: (B, num_classes) class logits s at the observed locations.
        labels: (B,) the class observed at each location.
        random_location_logits: (R, num_classes) class logits r at random locations (assumed absent everywhere),
            or None.
        positive_weight: lambda, the up-weighting of the one observed presence per row against the num_classes - 1
            assumed absences; Mac Aodha et al.'s code sets it to the number of classes.

    Per entry: ``-lambda log sigmoid(s_iy)`` for the observed class, ``-log(1 - sigmoid(s_ic))`` for every other class
    and ``-log(1 - sigmoid(r_jc))`` for every random location. Normalisation follows the reference implementation:
    the mean over the B x num_classes entries plus the mean over the R x num_classes random entries, so lambda keeps
    the meaning it has there. Computed with logsigmoid (``log(1 - sigmoid(x)) = logsigmoid(-x)``) for stability.
    """
    if location_logits.dim() != 2 or location_logits.shape[0] == 0 or location_logits.shape[1] == 0:
        raise ValueError(
            f"location_logits must have shape (B, num_classes) with B, num_classes > 0, "
            f"got {tuple(location_logits.shape)}"
        )
    num_rows, num_classes = location_logits.shape
    _check_labels(labels, num_rows, num_classes, "labels", "classes")
    if not positive_weight > 0:
        raise ValueError(f"positive_weight must be > 0, got {positive_weight}")
    observed = F.one_hot(labels, num_classes).bool()
    per_entry = torch.where(
        observed, -positive_weight * F.logsigmoid(location_logits), -F.logsigmoid(-location_logits)
    )
    loss = per_entry.mean()
    if random_location_logits is not None:
        if random_location_logits.dim() != 2 or random_location_logits.shape[1] != num_classes:
            raise ValueError(
                f"random_location_logits must have shape (R, {num_classes}), got {tuple(random_location_logits.shape)}"
            )
        if random_location_logits.shape[0] == 0:
            raise ValueError("random_location_logits is empty (R = 0); pass None to leave the random term out")
        loss = loss + (-F.logsigmoid(-random_location_logits)).mean()
    return loss
