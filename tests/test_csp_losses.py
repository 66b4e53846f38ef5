"""Tests for modeling_contrastgeo.csp_losses: uniform sampling on the sphere (its latitude distribution against a
chi-square bound), the CSP contrastive terms and the presence-absence loss against hand-computed values."""

import pytest
import torch

from modeling_contrastgeo.csp_losses import csp_loss, presence_absence_loss, sample_uniform_sphere
from tests.hand_math import cosine, log_sigmoid, negative_log_softmax


# ------------------------------------------------------------------------------------------ uniform sphere sampling
# scipy.stats.chi2.ppf(0.999, df) for df = 17 and 35: a correct sampler fails these one time in a thousand seeds.
CHI_SQUARE_999 = {17: 40.790, 35: 66.619}
NUM_SPHERE_SAMPLES = 200_000


def _latitude_chi_square(latitude):
    edges = torch.arange(-90.0, 91.0, 10.0, dtype=torch.float64)
    counts = torch.histc(latitude.double(), bins=18, min=-90.0, max=90.0)
    # The fraction of the sphere's area between two latitudes is (sin(b) - sin(a)) / 2.
    expected = NUM_SPHERE_SAMPLES * (torch.sin(torch.deg2rad(edges[1:])) - torch.sin(torch.deg2rad(edges[:-1]))) / 2
    return float(((counts - expected) ** 2 / expected).sum())


def test_sample_uniform_sphere_latitude_follows_cos_latitude():
    latlon = sample_uniform_sphere(NUM_SPHERE_SAMPLES, generator=torch.Generator().manual_seed(0))
    assert latlon.shape == (NUM_SPHERE_SAMPLES, 2) and latlon.dtype == torch.float32
    assert latlon[:, 0].min() >= -90 and latlon[:, 0].max() <= 90
    assert _latitude_chi_square(latlon[:, 0]) < CHI_SQUARE_999[17]


def test_the_latitude_check_has_the_power_to_reject_uniform_degrees():
    """A check of the test above, not of the package: a sampler uniform in degrees (too many polar points) must
    fail `_latitude_chi_square`, or passing it would prove nothing."""
    naive_latitude = torch.rand(NUM_SPHERE_SAMPLES, generator=torch.Generator().manual_seed(0)) * 180.0 - 90.0
    assert _latitude_chi_square(naive_latitude) > 10 * CHI_SQUARE_999[17]


def test_sample_uniform_sphere_longitude_is_uniform():
    longitude = sample_uniform_sphere(NUM_SPHERE_SAMPLES, generator=torch.Generator().manual_seed(1))[:, 1]
    assert longitude.min() >= -180 and longitude.max() < 180
    counts = torch.histc(longitude.double(), bins=36, min=-180.0, max=180.0)
    expected = NUM_SPHERE_SAMPLES / 36
    assert float(((counts - expected) ** 2 / expected).sum()) < CHI_SQUARE_999[35]


def test_sample_uniform_sphere_dtype_and_errors():
    latlon = sample_uniform_sphere(1000, generator=torch.Generator().manual_seed(0), dtype=torch.float16)
    assert latlon.dtype == torch.float16 and (latlon[:, 1] < 180).all()
    assert sample_uniform_sphere(0).shape == (0, 2)
    with pytest.raises(ValueError, match="num_locations"):
        sample_uniform_sphere(-1)
    with pytest.raises(ValueError, match="floating-point"):
        sample_uniform_sphere(3, dtype=torch.long)


# ---------------------------------------------------------------------------------------------------------- CSP
LOCATIONS = [[1.0, 0.0], [0.6, 0.8], [-0.5, 0.5]]
CONTENTS = [[0.9, 0.3], [0.0, 1.0], [-1.0, 0.2]]
RANDOM_LOCATIONS = [[0.0, -1.0], [1.0, 1.0]]
SECOND_VIEWS = [[1.0, 0.1], [0.5, 0.9], [-0.4, 0.6]]
TAU_B, TAU_L, TAU_D = 0.5, 0.25, 0.2


def _hand_csp_terms():
    n = len(LOCATIONS)
    location_to_content = [
        negative_log_softmax([cosine(LOCATIONS[i], CONTENTS[j]) / TAU_B for j in range(n)], i) for i in range(n)
    ]
    content_to_location = [
        negative_log_softmax([cosine(CONTENTS[i], LOCATIONS[j]) / TAU_B for j in range(n)], i) for i in range(n)
    ]
    in_batch = (sum(location_to_content) / n + sum(content_to_location) / n) / 2
    random_location = sum(
        negative_log_softmax(
            [cosine(CONTENTS[i], LOCATIONS[i]) / TAU_L] + [cosine(CONTENTS[i], r) / TAU_L for r in RANDOM_LOCATIONS],
            0,
        )
        for i in range(n)
    ) / n
    dropout_view = sum(
        negative_log_softmax([cosine(LOCATIONS[i], SECOND_VIEWS[j]) / TAU_D for j in range(n)], i) for i in range(n)
    ) / n
    return in_batch, random_location, dropout_view


def _csp(**kwargs):
    arguments = dict(
        location_embeds=torch.tensor(LOCATIONS, dtype=torch.float64),
        content_embeds=torch.tensor(CONTENTS, dtype=torch.float64),
        random_location_embeds=torch.tensor(RANDOM_LOCATIONS, dtype=torch.float64),
        location_embeds_second_view=torch.tensor(SECOND_VIEWS, dtype=torch.float64),
        in_batch_temperature=TAU_B,
        random_location_temperature=TAU_L,
        dropout_view_temperature=TAU_D,
    )
    arguments.update(kwargs)
    return csp_loss(**arguments)


def test_csp_loss_terms_match_hand_computed_values():
    in_batch, random_location, dropout_view = _hand_csp_terms()
    losses = _csp(in_batch_weight=1.0, random_location_weight=0.5, dropout_view_weight=2.0)
    assert losses["loss_in_batch"].item() == pytest.approx(in_batch, abs=1e-12)
    assert losses["loss_random_location"].item() == pytest.approx(random_location, abs=1e-12)
    assert losses["loss_dropout_view"].item() == pytest.approx(dropout_view, abs=1e-12)
    assert losses["loss"].item() == pytest.approx(in_batch + 0.5 * random_location + 2.0 * dropout_view, abs=1e-12)


def test_csp_loss_skips_terms_with_zero_weight_or_no_input():
    in_batch, random_location, dropout_view = _hand_csp_terms()
    losses = _csp(random_location_weight=0.0, dropout_view_weight=None)
    assert losses["loss_random_location"] is None and losses["loss_dropout_view"] is None
    assert losses["loss"].item() == pytest.approx(in_batch, abs=1e-12)

    losses = _csp(in_batch_weight=0.0, random_location_embeds=None)
    assert losses["loss_in_batch"] is None and losses["loss_random_location"] is None
    assert losses["loss"].item() == pytest.approx(dropout_view, abs=1e-12)

    with pytest.raises(ValueError, match="every CSP loss term is skipped"):
        _csp(in_batch_weight=0.0, random_location_weight=1.0, random_location_embeds=None,
             location_embeds_second_view=None)


def test_csp_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="content_embeds must have the shape"):
        _csp(content_embeds=torch.zeros(2, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match="in_batch_temperature must be > 0"):
        _csp(in_batch_temperature=0.0)
    with pytest.raises(ValueError, match="random_location_weight must be >= 0"):
        _csp(random_location_weight=-1.0)


# ------------------------------------------------------------------------------------------- presence / absence
def test_presence_absence_loss_matches_hand_computed_value():
    logits = [[2.0, -1.0, 0.5], [-0.3, 1.2, -2.0]]
    labels = [0, 2]
    random_logits = [[0.7, -0.4, 1.5]]
    weight = 4.0
    entries = [
        -weight * log_sigmoid(value) if c == labels[b] else -log_sigmoid(-value)
        for b, row in enumerate(logits)
        for c, value in enumerate(row)
    ]
    random_entries = [-log_sigmoid(-value) for row in random_logits for value in row]
    expected = sum(entries) / len(entries) + sum(random_entries) / len(random_entries)
    logits_tensor = torch.tensor(logits, dtype=torch.float64)
    random_tensor = torch.tensor(random_logits, dtype=torch.float64)
    loss = presence_absence_loss(logits_tensor, torch.tensor(labels), random_tensor, positive_weight=weight)
    assert loss.item() == pytest.approx(expected, abs=1e-12)
    without_random = presence_absence_loss(logits_tensor, torch.tensor(labels), None, weight)
    assert without_random.item() == pytest.approx(sum(entries) / len(entries), abs=1e-12)


def test_presence_absence_loss_is_stable_for_extreme_logits_and_validates():
    logits = torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0]], requires_grad=True)
    loss = presence_absence_loss(logits, torch.tensor([1, 0]), torch.tensor([[1000.0, -1000.0]]), 2048.0)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    assert loss.item() > 1000  # every entry is confidently wrong
    with pytest.raises(ValueError, match=r"labels\[1\] = 2 is outside \[0, 2\)"):
        presence_absence_loss(logits, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match=r"random_location_logits must have shape \(R, 2\)"):
        presence_absence_loss(logits, torch.tensor([0, 1]), torch.zeros(3, 5))
