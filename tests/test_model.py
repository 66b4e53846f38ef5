"""ContrastGeoModel with tiny configs: every location mode, encoder, fusion strategy and objective."""

import re

import numpy as np
import pandas as pd
import pytest
import torch

from modeling_contrastgeo import ContrastGeoConfig, ContrastGeoModel, ContrastGeoOutput
from modeling_contrastgeo.configuration_contrastgeo import LOCATION_ENCODER_KINDS
from tests.tiny_models import SWISS_PLACES, make_tiny_encoder, save_tiny_model

POSTS = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte", "Bärn isch schön", "Lozärn!"]
LABELS = torch.tensor([0, 2, 1, 3])


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory, minilm_path):
    return str(make_tiny_encoder(tmp_path_factory.mktemp("tiny-bert"), minilm_path))


def build(tiny_encoder, **config_kwargs):
    defaults = dict(projection_dim=16, location_hidden_size=32, num_hard_negatives=2, location_num_scales=4)
    torch.manual_seed(0)
    return ContrastGeoModel.from_text_encoder(tiny_encoder, places=SWISS_PLACES, **{**defaults, **config_kwargs})


def train_step_inputs(model, posts=POSTS, places=SWISS_PLACES):
    return {**model.tokenize_posts(posts), **model.tokenize_places(places)}


def grads_of(model, prefix):
    return [p.grad for name, p in model.named_parameters() if name.startswith(prefix) and p.requires_grad]


def has_gradient(grads):
    return any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("location_mode", ["prompt", "coordinates", "hybrid"])
@pytest.mark.parametrize("tlm_fusion", ["sum", "concat", "cross_attention"])
def test_contrastgeo_objective_every_mode_and_fusion(tiny_encoder, location_mode, tlm_fusion):
    model = build(tiny_encoder, location_mode=location_mode, tlm_fusion=tlm_fusion,
                  prompt_templates=["A post from {name}.", "{name}"])
    output = model(**train_step_inputs(model), labels=LABELS)
    assert output.logits_per_post.shape == (4, 4)
    assert output.post_embeds.shape == (4, 16) and output.location_embeds.shape == (4, 16)
    assert output.match_logits.shape == (4, 3, 2)
    assert torch.isfinite(output.loss) and torch.isfinite(output.loss_tlc) and torch.isfinite(output.loss_tlm)
    torch.testing.assert_close(output.loss, output.loss_tlc + output.loss_tlm)
    output.loss.backward()
    assert has_gradient(grads_of(model, "text_model."))
    assert has_gradient(grads_of(model, "text_projection."))
    assert has_gradient(grads_of(model, "matching_head."))
    assert model.logit_scale.grad is not None
    if location_mode != "prompt":
        assert has_gradient(grads_of(model, "location_encoder."))
    else:
        assert model.location_encoder is None


@pytest.mark.parametrize("fusion_encoder", ["mlp", "adapter", "transformer"])
@pytest.mark.parametrize("tlm_fusion", ["sum", "cross_attention"])
def test_fusion_encoders(tiny_encoder, fusion_encoder, tlm_fusion):
    model = build(tiny_encoder, tlm_fusion=tlm_fusion, fusion_encoder=fusion_encoder)
    output = model(**train_step_inputs(model), labels=LABELS)
    output.loss_tlm.backward()
    from modeling_contrastgeo.fusion import Adapter, ResidualMLP, TransformerFusionLayer

    expected_kind = {"mlp": ResidualMLP, "adapter": Adapter, "transformer": TransformerFusionLayer}[fusion_encoder]
    assert isinstance(model.matching_head.encoder, expected_kind)
    assert has_gradient(grads_of(model, "matching_head.encoder."))  # the chosen encoder is on the loss's path
    assert has_gradient(grads_of(model, "text_model."))


def test_cross_attention_output_depends_on_the_post(tiny_encoder):
    """The degenerate single key/value design would give the same match logits for every post."""
    model = build(tiny_encoder, tlm_fusion="cross_attention").eval()
    posts = model.tokenize_posts(["Grüezi mitenand", "Basler Fasnacht isch s Beschte"])
    places = model.tokenize_places(SWISS_PLACES)
    with torch.no_grad():
        pooled, tokens = model._encode_tokens(model.text_model, posts["input_ids"], posts["attention_mask"])
        post_embeds = torch.nn.functional.normalize(model.text_projection(pooled), dim=-1)
        location_embeds, location_tokens, location_mask = model._location_features(**places, return_tokens=True)
        same_place = torch.zeros(2, 1, dtype=torch.long)
        logits = model.match_logits(post_embeds, same_place, location_embeds, tokens, posts["attention_mask"],
                                    location_tokens, location_mask)
    assert not torch.allclose(logits[0], logits[1])


def test_cls_pooling_takes_the_first_token_of_a_left_padded_post(tmp_path, minilm_path):
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    # RoBERTa counts positions from the first non-padding token, so left padding leaves a post's states unchanged.
    tokenizer = AutoTokenizer.from_pretrained(minilm_path, padding_side="left")
    save_tiny_model(tmp_path, tokenizer, RobertaModel, RobertaConfig, hidden_size=32, num_hidden_layers=2,
                    num_attention_heads=2, intermediate_size=37, max_position_embeddings=130,
                    pad_token_id=tokenizer.pad_token_id)
    model = ContrastGeoModel.from_text_encoder(str(tmp_path), places=SWISS_PLACES, pooling="cls")
    assert model.tokenizer.padding_side == "left"
    alone = model.encode_posts(POSTS[-1:])
    torch.testing.assert_close(model.encode_posts(POSTS)[-1:], alone)


@pytest.mark.parametrize("kind", LOCATION_ENCODER_KINDS)
def test_every_location_encoder_kind(tiny_encoder, kind):
    model = build(tiny_encoder, location_mode="coordinates", location_encoder_kind=kind)
    output = model(**train_step_inputs(model), labels=LABELS)
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert has_gradient(grads_of(model, "location_encoder."))


def test_hybrid_gate(tiny_encoder):
    model = build(tiny_encoder, location_mode="hybrid", hybrid_combination="gate")
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    assert has_gradient(grads_of(model, "location_gate."))


def test_separate_prompt_encoder_gets_gradients(tiny_encoder):
    model = build(tiny_encoder, share_text_encoder=False)
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    assert has_gradient(grads_of(model, "location_text_model."))
    torch.testing.assert_close(model.location_text_model.embeddings.word_embeddings.weight,
                               model.text_model.embeddings.word_embeddings.weight)


def test_hard_negatives_in_forward_never_positive(tiny_encoder):
    # Places 0 and 4 are the same place under two entries: 4 must never be a negative for a post from 0.
    places = SWISS_PLACES + [dict(SWISS_PLACES[0])]
    model = build(tiny_encoder, num_hard_negatives=4)
    for seed in range(5):
        torch.manual_seed(seed)
        output = model(**train_step_inputs(model, places=places), labels=LABELS)
        for row, label in enumerate(LABELS.tolist()):
            # 5 entries less the post's own place (twice for place 0): a negative is drawn in every valid slot.
            assert int(output.negative_valid[row].sum()) == (3 if label == 0 else 4)
            drawn = output.negative_indices[row][output.negative_valid[row]].tolist()
            assert label not in drawn
            if label == 0:
                assert 4 not in drawn


def test_classifier_mode(tiny_encoder):
    model = build(tiny_encoder, location_mode="classifier")
    output = model(**model.tokenize_posts(POSTS), labels=LABELS)
    assert output.logits_per_post.shape == (4, len(SWISS_PLACES))
    output.loss.backward()
    assert has_gradient(grads_of(model, "classifier_head."))
    with pytest.raises(ValueError, match="only its trained places"):
        model.geolocate(POSTS[:1], places=SWISS_PLACES[:2])


def test_csp_objective_trains_location_side_only(tiny_encoder):
    model = build(tiny_encoder, location_mode="coordinates", csp_num_random_locations=8)
    latlon = torch.tensor([[p["latitude"], p["longitude"]] for p in SWISS_PLACES])
    output = model(objective="csp", latlon=latlon, **model.tokenize_posts(POSTS))
    for term in ("loss", "loss_in_batch", "loss_random_location", "loss_dropout_view"):
        assert torch.isfinite(getattr(output, term)), term
    output.loss.backward()
    assert has_gradient(grads_of(model, "location_encoder."))
    assert not has_gradient(grads_of(model, "text_model."))


def test_csp_objective_with_precomputed_content_features(tiny_encoder):
    model = build(tiny_encoder, location_mode="coordinates", csp_content_dim=12, csp_num_random_locations=8)
    latlon = torch.tensor([[p["latitude"], p["longitude"]] for p in SWISS_PLACES])
    output = model(objective="csp", latlon=latlon, content_embeds=torch.randn(4, 12))
    output.loss.backward()
    assert has_gradient(grads_of(model, "content_projection."))
    model_without_projection = build(tiny_encoder, location_mode="coordinates")
    with pytest.raises(ValueError, match="csp_content_dim=12"):
        model_without_projection(objective="csp", latlon=latlon, content_embeds=torch.randn(4, 12))


def test_location_prior_objective(tiny_encoder):
    model = build(tiny_encoder, location_mode="coordinates", location_prior_num_classes=3)
    latlon = torch.tensor([[47.4, 8.5], [46.9, 7.4], [-33.9, 151.2]])
    output = model(objective="location-prior", latlon=latlon, labels=torch.tensor([0, 1, 2]))
    assert output.logits.shape == (3, 3)
    output.loss.backward()
    assert has_gradient(grads_of(model, "location_prior_head."))
    assert not has_gradient(grads_of(model, "text_model."))
    # CSP's rule: p(y | content) * sigmoid(prior logit of y at x), renormalised per post.
    class_probabilities = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.3, 0.4]])
    with torch.no_grad():
        presence = torch.sigmoid(model.location_prior_logits(latlon))
    expected = class_probabilities * presence / (class_probabilities * presence).sum(-1, keepdim=True)
    combined = model.apply_location_prior(class_probabilities, latlon)
    torch.testing.assert_close(combined, expected)
    assert not torch.allclose(combined, class_probabilities, atol=1e-4)  # the prior moved them


def test_apply_location_prior_refuses_probabilities_that_do_not_fit_its_classes_or_locations(tiny_encoder):
    model = build(tiny_encoder, location_mode="coordinates", location_prior_num_classes=3)
    latlon = torch.tensor([[47.4, 8.5], [46.9, 7.4]])
    for probabilities in (torch.full((2, 4), 0.25), torch.ones(2, 1), torch.full((1, 3), 1 / 3)):
        with pytest.raises(ValueError, match=re.escape(f"shape {tuple(probabilities.shape)}, expected (2, 3)")):
            model.apply_location_prior(probabilities, latlon)
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        model.apply_location_prior(torch.tensor([[0.5, 0.5, 0.0], [-1.0, 1.0, 1.0]]), latlon)
    # One location may take a vector.
    assert model.apply_location_prior(torch.tensor([0.2, 0.3, 0.5]), latlon[:1]).shape == (1, 3)


def test_objective_needs_coordinate_encoder(tiny_encoder):
    model = build(tiny_encoder, location_mode="prompt")
    with pytest.raises(ValueError, match="coordinate encoder"):
        model(objective="csp", latlon=torch.zeros(2, 2), content_embeds=torch.zeros(2, 16))
    with pytest.raises(ValueError, match="unknown objective"):
        model(objective="nope")


def test_gallery_cache_reused_and_invalidated_by_training(tiny_encoder):
    model = build(tiny_encoder)
    first = model.gallery_embeddings(SWISS_PLACES)
    assert model.gallery_embeddings(SWISS_PLACES) is first
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    optimizer.step()
    second = model.gallery_embeddings(SWISS_PLACES)
    assert second is not first and not torch.allclose(first, second)


def test_geolocate_records(tiny_encoder):
    model = build(tiny_encoder)
    results = model.geolocate(POSTS, top_k=3)
    assert len(results) == len(POSTS)
    for records in results:
        assert [set(r) for r in records] == [{"name", "latitude", "longitude", "score"}] * 3
        scores = [r["score"] for r in records]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1 + 1e-6
    reranked = model.geolocate(POSTS, top_k=2, rerank=True, rerank_top_k=3)
    assert all(len(r) == 2 for r in reranked)
    assert model.geolocate(POSTS[0], top_k=10)[0][-1]["name"] in {p["name"] for p in SWISS_PLACES}


def test_temperature_fit_is_stored(tiny_encoder):
    model = build(tiny_encoder)
    temperature = model.fit_probability_temperature(POSTS, LABELS.tolist())
    assert model.config.probability_temperature == temperature
    logits, _ = model.predict_logits(POSTS)

    def nll(value):
        return torch.nn.functional.cross_entropy(logits.float() / value, LABELS).item()

    # The fitted temperature minimises the labelled posts' negative log-likelihood (away from the clamp bounds).
    assert 0.05 < temperature < 20.0
    assert all(nll(temperature) <= nll(temperature * factor) + 1e-6 for factor in (0.8, 0.95, 1.05, 1.25))
    names = [SWISS_PLACES[i]["name"] for i in LABELS.tolist()]
    assert model.fit_probability_temperature(POSTS, names) == pytest.approx(temperature)  # names work as indices


@pytest.mark.parametrize("labels, message", [
    ([0, 2, 1, 3.5], "label 3 must be a place's index or name, got float 3.5"),
    ([0, 2, 1, True], "label 3 must be a place's index or name, got bool True"),
    ([0, 2, 1, None], "label 3 must be a place's index or name, got NoneType None"),
    ([0, 2, 1, "Atlantis"], "label 3 \\('Atlantis'\\) is not the name of a place of the gallery"),
    ([0, 2, 1, 7], "label 3 \\(7\\) must index the 4 places"),
    ([0, 2, 1], "4 posts but 3 labels"),
    (1, "labels must be a list with one label per post, got int 1"),
])
def test_temperature_fit_names_a_bad_label(tiny_encoder, labels, message):
    with pytest.raises(ValueError, match=message):
        build(tiny_encoder).fit_probability_temperature(POSTS, labels)


@pytest.mark.parametrize(
    "texts, message",
    [(["ok", ""], "post 1 is empty"), (["   "], "post 0 is empty"), ([], "no posts"), ([3], "post 0 is not a string")],
)
def test_bad_posts(tiny_encoder, texts, message):
    model = build(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(texts)


def test_blank_posts_are_scored_only_when_allowed(tiny_encoder):
    model = build(tiny_encoder)
    rows = model.geolocate(["Grüezi", "   ", ""], top_k=2, allow_blank=True)
    assert len(rows) == 3 and all(len(row) == 2 for row in rows)
    # A blank post is encoded as the special tokens alone, whatever its whitespace.
    assert rows[1] == rows[2]
    logits, _ = model.predict_logits(["Grüezi", " "], allow_blank=True)
    assert logits.shape == (2, len(SWISS_PLACES)) and torch.isfinite(logits).all()
    with pytest.raises(ValueError, match="post 1 is empty"):
        model.predict_logits(["Grüezi", " "])
    with pytest.raises(ValueError, match="post 0 is not a string"):
        model.geolocate([None], allow_blank=True)


@pytest.mark.parametrize(
    "place, message",
    [
        ({"name": "X", "latitude": 123.0, "longitude": 0.0}, "latitude 123.0 is outside"),
        ({"name": "X", "latitude": 0.0, "longitude": 181.0}, "longitude 181.0 is outside"),
        ({"name": "X", "latitude": float("nan"), "longitude": 0.0}, "latitude is nan"),
        ({"name": "X", "latitude": 0.0, "longitude": float("inf")}, "longitude is inf"),
        ({"latitude": 0.0, "longitude": 0.0}, "place 1 is missing name"),
        ({"name": " ", "latitude": 0.0, "longitude": 0.0}, "name is empty"),
        ({"name": 1.5, "latitude": 0.0, "longitude": 0.0}, "place 1: name must be text, got float 1.5"),
        ({"name": True, "latitude": 0.0, "longitude": 0.0}, "place 1: name must be text, got bool True"),
        ({"name": "X", "latitude": "north", "longitude": 0.0}, "must be numbers"),
        ({"name": "X", "latitude": True, "longitude": 0.0}, "must be numbers, got True, 0.0"),
        (dict(SWISS_PLACES[0]), r"place 1 repeats place 0 \(Zürich, Switzerland, 47.36667, 8.55\)"),
    ],
)
def test_bad_places(tiny_encoder, place, message):
    model = build(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(["Grüezi"], places=[SWISS_PLACES[0], place])


def test_galleries_read_from_tables(tiny_encoder, caplog):
    model = build(tiny_encoder)
    codes = pd.DataFrame({"name": [10001, 94103], "latitude": [40.75, 37.77], "longitude": [-73.99, -122.41]})
    assert {r["name"] for r in model.geolocate(["Grüezi"], places=codes, top_k=2)[0]} == {"10001", "94103"}
    with pytest.raises(ValueError, match="this mapping holds single values \\(one place\\?\\): wrap it in a list"):
        model.geolocate(["Grüezi"], places=dict(SWISS_PLACES[0]))
    twins = [SWISS_PLACES[0], SWISS_PLACES[1], {**SWISS_PLACES[1], "latitude": 10.0}]
    # With the prior on, one geolocate call passes the gallery through several steps: it is still logged once.
    model_with_prior = build(tiny_encoder, place_prior="population")
    with caplog.at_level("WARNING", logger="modeling_contrastgeo.places"):
        model_with_prior.geolocate(["Grüezi"], places=twins)
    shared = [record for record in caplog.records if "share a name" in record.getMessage()]
    assert len(shared) == 1 and "place 2" in shared[0].getMessage()
    assert "1 place(s) share a name with an earlier one" in shared[0].getMessage()


def test_a_resolved_gallery_is_checked_again_once_edited(tiny_encoder):
    model = build(tiny_encoder)
    gallery = model.resolve_places(SWISS_PLACES)
    assert model.resolve_places(gallery) is gallery
    model.set_places(gallery)
    gallery[1]["latitude"] = 95.0
    assert model.config.places[1]["latitude"] == SWISS_PLACES[1]["latitude"]  # the saved label set is its own copy
    with pytest.raises(ValueError, match="place 1 \\(.*\\): latitude 95.0 is outside"):
        model.geolocate(["Grüezi"], places=gallery)


@pytest.mark.parametrize(
    "posts, message",
    [(pd.DataFrame({"text": ["Grüezi"]}), "got a DataFrame: pass its text column"),
     ({"text": "Grüezi"}, "got a dict \\(iterating it gives its keys\\)"),
     ({"Grüezi", "Bärn"}, "got a set: it has no order")],
)
def test_posts_in_containers_that_do_not_iterate_as_posts(tiny_encoder, posts, message):
    model = build(tiny_encoder)
    with pytest.raises(ValueError, match=message):
        model.geolocate(posts)
    assert len(model.geolocate(pd.Series(["Grüezi", "Bärn"]))) == 2  # a column is fine


def test_empty_gallery_and_bad_latlon_tensor(tiny_encoder):
    model = build(tiny_encoder, location_mode="coordinates")
    with pytest.raises(ValueError, match="gallery of places is empty"):
        model.geolocate(["Grüezi"], places=[])
    with pytest.raises(ValueError, match="latitude"):
        model.get_location_features(place_latlon=torch.tensor([[95.0, 8.0]]))
    for arguments in ({"top_k": 0}, {"top_k": True}, {"top_k": 2.0}, {"batch_size": 0}, {"rerank_top_k": -1}):
        [(name, value)] = arguments.items()
        with pytest.raises(ValueError, match=f"{name} must be a positive integer, got {value!r}"):
            model.geolocate(["Grüezi"], rerank=True, **arguments)
    for method in (model.encode_posts, model.predict_logits):
        with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
            method(["Grüezi"], batch_size=0)
    assert len(model.geolocate(["Grüezi"], top_k=np.int64(2))[0]) == 2  # numpy integers are whole numbers too


def test_bad_config_values():
    with pytest.raises(ValueError, match="location_mode"):
        ContrastGeoConfig(location_mode="satellite")
    with pytest.raises(ValueError, match="no {name} slot"):
        ContrastGeoConfig(prompt_templates=["A post."])
    with pytest.raises(ValueError, match="needs the label set"):
        ContrastGeoConfig(location_mode="classifier")


@pytest.mark.parametrize("config_kwargs, message", [
    (dict(projection_dim=16.5), "projection_dim must be a whole number >= 1, got 16.5"),
    (dict(max_post_length=-5), "max_post_length must be a whole number >= 1"),  # was an OverflowError in the tokenizer
    (dict(max_prompt_length=0), "max_prompt_length must be a whole number >= 1"),  # 0 silently meant no truncation
    (dict(location_mode="coordinates", location_hidden_size=-4), "location_hidden_size must be a whole number >= 1"),
    (dict(csp_content_dim=-3), "csp_content_dim must be a whole number >= 1"),  # was a RuntimeError in torch
    (dict(location_prior_num_classes=-2), "location_prior_num_classes must be a whole number >= 1"),
    (dict(location_prior_num_classes=3, location_prior_class_names=["a"]), "has 1 names for"),
    (dict(rerank_top_k=-1), "rerank_top_k must be a whole number >= 0"),  # -1 silently turned re-ranking on
    (dict(max_logit_scale=-1.0), "max_logit_scale must be a positive number"),  # -1 silently inverted the ranking
    (dict(initializer_range=-1.0), "initializer_range must be a number >= 0"),
    (dict(prompt_templates=["{name} in {region}"]), re.escape("prompt template '{name} in {region}' is not a format")),
    (dict(places=[{"name": "X", "latitude": 123, "longitude": 0}]), re.escape("place 0 (X): latitude 123.0 is outside")),
    (dict(places=[SWISS_PLACES[0], SWISS_PLACES[0]]), "place 1 repeats place 0"),
    (dict(places=[("Bern", 46.9, 7.4)]), "place 0 must be a mapping"),
])
def test_config_refuses_bad_values_when_built(config_kwargs, message):
    """Bad values fail with a ValueError naming the field when the config is built (or loaded), not later inside
    torch or the tokenizer, or silently."""
    with pytest.raises(ValueError, match=message):
        ContrastGeoConfig(**config_kwargs)


def test_return_dict_false_returns_the_output_fields_in_order(tiny_encoder):
    """As transformers' models: `return_dict=False` (or config.return_dict=False) gives `to_tuple()`, loss first."""
    model = build(tiny_encoder)
    inputs = train_step_inputs(model)
    output = model(**inputs, labels=LABELS)
    assert list(output.keys()) == ["loss", "loss_tlc", "loss_tlm", "logits_per_post", "post_embeds",
                                   "location_embeds", "match_logits", "negative_indices", "negative_valid"]
    torch.manual_seed(0)
    expected = model(**inputs, labels=LABELS).to_tuple()
    torch.manual_seed(0)
    as_tuple = model(**inputs, labels=LABELS, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == len(expected)
    for value, reference in zip(as_tuple, expected):
        torch.testing.assert_close(value, reference)
    model.config.return_dict = False
    without_loss = model(**inputs)
    assert isinstance(without_loss, tuple) and len(without_loss) == 3  # logits_per_post, post_embeds, location_embeds
    assert isinstance(model(**inputs, return_dict=True), ContrastGeoOutput)
    coordinates = build(tiny_encoder, location_mode="coordinates", location_prior_num_classes=2)
    latlon = torch.tensor([[47.0, 8.0], [46.0, 7.0]])
    csp = coordinates(latlon=latlon, content_embeds=torch.randn(2, 16), objective="csp", return_dict=False)
    prior = coordinates(latlon=latlon, labels=torch.tensor([0, 1]), objective="location-prior", return_dict=False)
    assert isinstance(csp, tuple) and csp[0].ndim == 0 and isinstance(prior, tuple) and prior[0].ndim == 0


def test_return_loss_without_labels_is_refused(tiny_encoder):
    """It returned loss=None, which a training loop then fails on far from the cause."""
    model = build(tiny_encoder)
    with pytest.raises(ValueError, match="return_loss=True: the contrastgeo loss needs labels"):
        model(**train_step_inputs(model), return_loss=True)
    coordinates = build(tiny_encoder, location_mode="coordinates", location_prior_num_classes=2)
    with pytest.raises(ValueError, match="return_loss=True: the location-prior loss needs labels"):
        coordinates(latlon=torch.tensor([[47.0, 8.0]]), objective="location-prior", return_loss=True)
    assert coordinates(latlon=torch.tensor([[47.0, 8.0]]), content_embeds=torch.randn(1, 16), objective="csp",
                       return_loss=True).loss is not None  # CSP's loss needs no labels


def test_a_fixed_logit_scale_stays_fixed_when_loaded(tiny_encoder, tmp_path):
    """transformers loads every weight as a trainable Parameter; learnable_logit_scale=False must survive that."""
    model = build(tiny_encoder, learnable_logit_scale=False)
    assert not model.logit_scale.requires_grad
    model.save_pretrained(tmp_path)
    loaded = ContrastGeoModel.from_pretrained(tmp_path)
    assert not loaded.logit_scale.requires_grad
    loaded, info = ContrastGeoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not loaded.logit_scale.requires_grad and not info["missing_keys"] and not info["unexpected_keys"]
    assert build(tiny_encoder).save_pretrained(tmp_path) is None
    assert ContrastGeoModel.from_pretrained(tmp_path).logit_scale.requires_grad


def test_model_without_saved_places_asks_for_a_gallery(tiny_encoder):
    torch.manual_seed(0)
    model = ContrastGeoModel.from_text_encoder(tiny_encoder, projection_dim=16)
    with pytest.raises(ValueError, match="no saved places"):
        model.geolocate(["Grüezi"])
    assert model.geolocate(["Grüezi"], places=SWISS_PLACES, top_k=1)[0][0]["name"]


def test_spec_galleries_are_resolved_once_and_cannot_be_edited_through_a_result(tiny_encoder):
    from modeling_contrastgeo.places import places_fingerprint

    model = build(tiny_encoder, location_mode="coordinates")
    first = model.resolve_places("geonames:CH")
    name = first[0]["name"]
    first[0]["name"] = "edited"
    again = model.resolve_places(" geonames:CH ")
    assert again[0]["name"] == name and again == model.resolve_places("geonames:CH")
    # The remembered fingerprint is the gallery's content hash.
    assert places_fingerprint(again) == places_fingerprint([dict(place) for place in again])
    assert model.geolocate(["Grüezi"], places="geonames:CH", top_k=3) == model.geolocate(
        ["Grüezi"], places=list(again), top_k=3)
