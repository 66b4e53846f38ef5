"""Tests for modeling_contrastgeo.losses (TLC, hard-negative sampling, TLM, gathering): hand-computed values and
sampler properties. The CSP losses are tested in test_csp_losses.py."""

import math

import pytest
import torch

from modeling_contrastgeo.losses import (
    gather_with_grad,
    sample_hard_negatives,
    tlc_loss,
    tlm_constant_predictor_entropy,
    tlm_loss,
)
from tests.hand_math import cosine, negative_log_softmax


# ----------------------------------------------------------------------------------------------------------- TLC
POSTS = [[1.0, 0.0, 0.5], [0.2, 1.0, -0.3], [-0.7, 0.4, 1.0]]
PLACES = [[1.0, 0.1, 0.0], [0.0, 1.0, 0.0], [0.3, -0.2, 1.0], [-1.0, -1.0, 0.5]]
TLC_LABELS = [0, 1, 3]
LOGIT_SCALE = 2.5


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_tlc_loss_matches_hand_computed_cross_entropy(label_smoothing):
    loss, logits_per_post = tlc_loss(
        torch.tensor(POSTS, dtype=torch.float64),
        torch.tensor(PLACES, dtype=torch.float64),
        torch.tensor(TLC_LABELS),
        torch.tensor(LOGIT_SCALE, dtype=torch.float64),
        label_smoothing=label_smoothing,
    )
    expected_logits = [[LOGIT_SCALE * cosine(post, place) for place in PLACES] for post in POSTS]
    row_losses = []
    for logits, label in zip(expected_logits, TLC_LABELS):
        # torch's label smoothing: (1 - eps) * NLL(true class) + eps * mean over classes of NLL(class).
        smoothed = sum(negative_log_softmax(logits, c) for c in range(len(PLACES))) / len(PLACES)
        row_losses.append((1 - label_smoothing) * negative_log_softmax(logits, label) + label_smoothing * smoothed)
    assert logits_per_post.shape == (3, 4)
    torch.testing.assert_close(logits_per_post, torch.tensor(expected_logits, dtype=torch.float64), rtol=0, atol=1e-12)
    assert loss.item() == pytest.approx(sum(row_losses) / len(row_losses), abs=1e-12)


def test_tlc_loss_gradients_reach_both_embeddings_and_the_scale():
    post_embeds = torch.tensor(POSTS, requires_grad=True)
    location_embeds = torch.tensor(PLACES, requires_grad=True)
    logit_scale = torch.tensor(LOGIT_SCALE, requires_grad=True)
    loss, _ = tlc_loss(post_embeds, location_embeds, torch.tensor(TLC_LABELS), logit_scale)
    loss.backward()
    for tensor in (post_embeds, location_embeds, logit_scale):
        assert torch.isfinite(tensor.grad).all()
        assert tensor.grad.abs().sum() > 0


def test_tlc_loss_rejects_bad_input():
    posts, places = torch.tensor(POSTS), torch.tensor(PLACES)
    with pytest.raises(ValueError, match=r"labels\[2\] = 4 is outside \[0, 4\)"):
        tlc_loss(posts, places, torch.tensor([0, 1, 4]), 1.0)
    with pytest.raises(ValueError, match=r"labels\[1\] = -1"):
        tlc_loss(posts, places, torch.tensor([0, -1, 2]), 1.0)
    with pytest.raises(ValueError, match="embedding size"):
        tlc_loss(posts, places[:, :2], torch.tensor([0, 1, 2]), 1.0)
    with pytest.raises(ValueError, match=r"labels must have shape \(3,\)"):
        tlc_loss(posts, places, torch.tensor([0, 1]), 1.0)
    with pytest.raises(ValueError, match="integer"):
        tlc_loss(posts, places, torch.tensor([0.0, 1.0, 2.0]), 1.0)
    with pytest.raises(ValueError, match="post_embeds must have shape"):
        tlc_loss(posts[0], places, torch.tensor([0]), 1.0)


# ----------------------------------------------------------------------------------------- hard-negative sampling
def _random_sampler_case(generator):
    """A random (similarity, positive_mask) with duplicated places, all-same labels and all-positive rows."""
    num_posts = int(torch.randint(1, 7, (1,), generator=generator))
    num_places = int(torch.randint(1, 9, (1,), generator=generator))
    case_kind = int(torch.randint(0, 4, (1,), generator=generator))
    # Places sharing an id are "equal" (e.g. the same city listed twice), so all of them are positives.
    num_distinct = 1 if case_kind == 0 else int(torch.randint(1, num_places + 1, (1,), generator=generator))
    place_ids = torch.randint(0, num_distinct, (num_places,), generator=generator)
    labels = torch.randint(0, num_places, (num_posts,), generator=generator)
    if case_kind == 1:
        labels[:] = labels[0]
    positive_mask = place_ids[labels][:, None] == place_ids[None, :]
    scale = [1.0, 30.0, 1e4][int(torch.randint(0, 3, (1,), generator=generator))]
    similarity = scale * torch.randn(num_posts, num_places, generator=generator)
    if case_kind == 2:
        similarity[torch.rand(num_posts, num_places, generator=generator) < 0.3] = float("-inf")
    num_negatives = int(torch.randint(0, num_places + 4, (1,), generator=generator))
    return similarity, positive_mask, num_negatives


@pytest.mark.parametrize("strategy", ["multinomial", "topk"])
def test_sample_hard_negatives_never_returns_a_valid_positive(strategy):
    case_generator = torch.Generator().manual_seed(1234)
    sampling_generator = torch.Generator().manual_seed(99)
    for _ in range(400):
        similarity, positive_mask, num_negatives = _random_sampler_case(case_generator)
        indices, valid = sample_hard_negatives(
            similarity, positive_mask, num_negatives, strategy=strategy, generator=sampling_generator
        )
        num_posts, num_places = similarity.shape
        assert indices.shape == valid.shape == (num_posts, num_negatives)
        assert indices.dtype == torch.long and valid.dtype == torch.bool
        assert ((indices >= 0) & (indices < num_places)).all()
        drawable = ~positive_mask & torch.isfinite(similarity)
        assert not (valid & torch.gather(positive_mask, 1, indices)).any()
        assert (torch.gather(drawable, 1, indices) | ~valid).all()
        for row in range(num_posts):
            chosen = indices[row][valid[row]].tolist()
            assert len(chosen) == len(set(chosen)), "drawn with replacement"
            assert len(chosen) == min(num_negatives, int(drawable[row].sum())), "a drawable negative was left out"


def test_sample_hard_negatives_handles_all_positive_rows_and_k_above_candidates():
    similarity = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.5, 0.5]])
    positive_mask = torch.tensor([[True, True, True], [True, False, False]])
    indices, valid = sample_hard_negatives(similarity, positive_mask, 5, generator=torch.Generator().manual_seed(0))
    assert indices.shape == (2, 5)
    assert not valid[0].any()
    assert valid[1].sum() == 2
    assert sorted(indices[1][valid[1]].tolist()) == [1, 2]
    assert ((indices >= 0) & (indices < 3)).all()  # unused slots still index a real place


def test_sample_hard_negatives_draws_with_softmax_probabilities_and_prefers_hard_ones():
    # The true place (index 0) is the most similar, but is never drawn; negatives in increasing similarity.
    row = torch.tensor([3.0, 0.0, 0.5, 1.0, 1.5, 2.0], dtype=torch.float64)
    num_draws = 40000
    similarity = row.expand(num_draws, -1).contiguous()
    positive_mask = torch.zeros_like(similarity, dtype=torch.bool)
    positive_mask[:, 0] = True
    probabilities = torch.softmax(row[1:], dim=0).tolist()

    indices, valid = sample_hard_negatives(similarity, positive_mask, 1, generator=torch.Generator().manual_seed(7))
    assert valid.all()
    frequencies = (torch.bincount(indices[:, 0], minlength=6)[1:].double() / num_draws).tolist()
    assert frequencies == sorted(frequencies) and len(set(frequencies)) == 5
    assert frequencies == pytest.approx(probabilities, abs=0.015)

    # Two draws without replacement: P(i drawn) = p_i + sum_{j != i} p_j p_i / (1 - p_j).
    indices, valid = sample_hard_negatives(similarity, positive_mask, 2, generator=torch.Generator().manual_seed(8))
    assert valid.all() and (indices[:, 0] != indices[:, 1]).all()
    inclusion = (torch.bincount(indices.flatten(), minlength=6)[1:].double() / num_draws).tolist()
    expected_inclusion = [
        p_i + sum(p_j * p_i / (1 - p_j) for j, p_j in enumerate(probabilities) if j != i)
        for i, p_i in enumerate(probabilities)
    ]
    assert inclusion == pytest.approx(expected_inclusion, abs=0.015)


def test_sample_hard_negatives_topk_takes_the_most_similar_negatives():
    similarity = torch.tensor([[5.0, 1.0, 4.0, 3.0, 2.0], [0.0, 9.0, 8.0, -1.0, 7.0]])
    positive_mask = torch.tensor([[True, False, False, False, False], [False, True, False, False, True]])
    indices, valid = sample_hard_negatives(similarity, positive_mask, 2, strategy="topk")
    assert valid.all()
    assert indices.tolist() == [[2, 3], [2, 0]]


def test_sample_hard_negatives_is_reproducible_with_a_generator_and_has_no_grad():
    similarity = torch.randn(4, 10, generator=torch.Generator().manual_seed(0), requires_grad=True)
    positive_mask = torch.eye(4, 10, dtype=torch.bool)
    first = sample_hard_negatives(similarity, positive_mask, 3, generator=torch.Generator().manual_seed(5))
    second = sample_hard_negatives(similarity, positive_mask, 3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert not first[0].requires_grad


def test_sample_hard_negatives_rejects_bad_input():
    similarity = torch.zeros(2, 3)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    bad = similarity.clone()
    bad[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"similarity\[1, 2\] = nan"):
        sample_hard_negatives(bad, mask, 1)
    with pytest.raises(ValueError, match="positive_mask must be a bool tensor"):
        sample_hard_negatives(similarity, mask.long(), 1)
    for bad_count in (-1, 1.5, True):
        with pytest.raises(ValueError, match="num_negatives must be a non-negative int"):
            sample_hard_negatives(similarity, mask, bad_count)
    with pytest.raises(ValueError, match="strategy"):
        sample_hard_negatives(similarity, mask, 1, strategy="uniform")
    with pytest.raises(ValueError, match="no candidate places"):
        sample_hard_negatives(torch.zeros(2, 0), torch.zeros(2, 0, dtype=torch.bool), 1)


# ---------------------------------------------------------------------------------------------------------- TLM
def test_tlm_loss_matches_hand_computed_value_and_ignores_invalid_slots():
    positive = [[0.2, 1.5], [1.0, -0.5]]
    negative = [[[0.3, 0.1], [float("nan"), 1e30]], [[-1.0, 2.0], [0.5, 0.5]]]
    valid = [[True, False], [True, True]]
    positive_logits = torch.tensor(positive, requires_grad=True)
    negative_logits = torch.tensor(negative, requires_grad=True)
    loss = tlm_loss(positive_logits, negative_logits, torch.tensor(valid))

    terms = [negative_log_softmax(logits, 1) for logits in positive]
    terms += [negative_log_softmax(negative[b][s], 0) for b in range(2) for s in range(2) if valid[b][s]]
    assert loss.item() == pytest.approx(sum(terms) / len(terms), abs=1e-6)
    loss.backward()
    assert torch.isfinite(negative_logits.grad).all()
    assert negative_logits.grad[0, 1].abs().sum() == 0
    assert negative_logits.grad[1].abs().sum() > 0


def test_tlm_constant_predictor_reaches_exactly_the_constant_predictor_entropy():
    num_negatives = 6
    p = 1 / (1 + num_negatives)
    expected = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    assert tlm_constant_predictor_entropy(1, num_negatives) == pytest.approx(expected, abs=1e-12)
    # A head that outputs log-odds log(p / (1 - p)) for every pair, whatever the pair, scores exactly this loss.
    constant_logits = torch.tensor([0.0, math.log(p / (1 - p))], dtype=torch.float64)
    loss = tlm_loss(
        constant_logits.expand(5, 2),
        constant_logits.expand(5, num_negatives, 2),
        torch.ones(5, num_negatives, dtype=torch.bool),
    )
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    assert tlm_constant_predictor_entropy(3, 0) == 0.0
    with pytest.raises(ValueError, match="not both be 0"):
        tlm_constant_predictor_entropy(0, 0)


def test_tlm_loss_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"negative_match_logits must have shape \(2, k, 2\)"):
        tlm_loss(torch.zeros(2, 2), torch.zeros(3, 4, 2), torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="negative_valid must be a bool tensor"):
        tlm_loss(torch.zeros(2, 2), torch.zeros(2, 4, 2), torch.ones(2, 3, dtype=torch.bool))


def test_gather_with_grad_is_identity_without_distributed():
    tensor = torch.randn(3, 2, requires_grad=True)
    assert gather_with_grad(tensor) is tensor
