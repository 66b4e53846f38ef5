"""CSP evaluation (`contrastgeo.training.evaluation`): `retrieval_top1` is location-to-content retrieval over the whole
evaluation set, so it equals a hand-computed value and does not move with the evaluation batch size."""

import pytest
import torch

from contrastgeo.training.evaluation import retrieval_top1
from tests.train_runs import reset_accelerate_state
from tests.tiny_models import TRAINING_BERT, make_tiny_encoder

# Five rows in 2-D. Cosines of each location (row) with every content (column), by hand:
#   location [1, 0]:  c0 1/sqrt(1.01) = 0.995, c1 0.0995, c2 1 (best; own c0)                     -> missed
#   location [0, 1]:  c0 0.0995, c1 0.995 (best, own), c2 0, c3 -1, c4 -1                        -> found
#   location [1, 1]:  c0 = c1 = 1.1 / (sqrt(2) sqrt(1.01)) = 0.774 (best), c2 0.707 (own)         -> missed
#   location [-1, 0]: c3 = c4 = 0 (best, own c3 tied with c4's equal content), c1 -0.0995, c2 -1  -> found
#   location [0, -1]: c3 = c4 = 1 (best, own c4 tied with c3's equal content)                      -> found
LOCATIONS = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
CONTENTS = torch.tensor([[1.0, 0.1], [0.1, 1.0], [1.0, 0.0], [0.0, -1.0], [0.0, -1.0]])
HAND_RETRIEVAL_TOP1 = 3 / 5
CONTENT_NOISE = 0.3


@pytest.mark.parametrize("max_similarities", [1, 5, 7, 25, None])
def test_retrieval_top1_equals_the_hand_computed_share_in_any_block_size(max_similarities):
    kwargs = {} if max_similarities is None else {"max_similarities": max_similarities}
    # Scaled rows: retrieval is by cosine, not by dot product.
    assert retrieval_top1(LOCATIONS * torch.tensor([[3.0], [1.0], [0.5], [2.0], [1.0]]), CONTENTS,
                          **kwargs) == pytest.approx(HAND_RETRIEVAL_TOP1)


def test_retrieval_top1_refuses_mismatched_rows():
    with pytest.raises(ValueError, match="one content per location .* got 5 locations and 4 contents"):
        retrieval_top1(LOCATIONS, CONTENTS[:4])


@pytest.fixture(scope="module")
def csp_model(tmp_path_factory, minilm_path):
    from modeling_contrastgeo import ContrastGeoModel

    encoder = make_tiny_encoder(tmp_path_factory.mktemp("csp") / "encoder", minilm_path, **TRAINING_BERT)
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(str(encoder), location_mode="coordinates", projection_dim=None,
                                               location_num_scales=4, location_hidden_size=16,
                                               csp_num_random_locations=8)
    return model.eval()


def _evaluate(model, latlon, content_embeds, eval_batch_size):
    from accelerate import Accelerator

    from contrastgeo.training.batches import index_dataloader
    from contrastgeo.training.evaluation import evaluate_csp

    reset_accelerate_state()
    accelerator = Accelerator(cpu=True)
    prepared_model, dataloader = accelerator.prepare(model, index_dataloader(latlon.shape[0], eval_batch_size))
    return evaluate_csp(accelerator, prepared_model, dataloader, latlon, content_embeds)


def test_csp_retrieval_top1_is_over_the_whole_evaluation_set_whatever_the_batch_size(csp_model):
    generator = torch.Generator().manual_seed(0)
    num_rows = 23
    latlon = torch.stack([torch.rand(num_rows, generator=generator) * 120 - 60,
                          torch.rand(num_rows, generator=generator) * 340 - 170], dim=1)
    with torch.no_grad():
        location_embeds = csp_model.get_location_features(place_latlon=latlon)
    # Contents near their own location's embedding: some rows are found, not all.
    content_embeds = location_embeds + CONTENT_NOISE * torch.randn(location_embeds.shape, generator=generator)
    # By hand: a row is found when no other row's content is closer (cosine) to its location than its own.
    similarities = (torch.nn.functional.normalize(location_embeds, dim=-1)
                    @ torch.nn.functional.normalize(content_embeds, dim=-1).T)
    expected = sum(bool(similarities[i, i] >= similarities[i].max()) for i in range(num_rows)) / num_rows
    assert 0 < expected < 1  # a per-batch measure would differ: at batch size 1 every row is found

    results = {size: _evaluate(csp_model, latlon, content_embeds, size) for size in (1, 4, 23, 64)}
    for size, result in results.items():
        assert result["num_examples"] == num_rows
        assert result["retrieval_top1"] == pytest.approx(expected), size
