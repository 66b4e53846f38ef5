"""ContrastGeoModel with tiny configs: every location mode, encoder, fusion strategy and objective; its config's
checks and transformers' output conventions. Prediction (`geolocate`, galleries, calibration) is tested in test_model_geolocate.py, the text encoder
(its outputs, forward's keyword arguments, pooling and causal encoders) in test_model_text_encoder.py."""

import re

import pytest
import torch

from modeling_contrastgeo import ContrastGeoConfig, ContrastGeoModel, ContrastGeoOutput
from modeling_contrastgeo.configuration_contrastgeo import LOCATION_ENCODER_KINDS
from tests.tiny_models import LABELS, POSTS, SWISS_PLACES, build_tiny_model, train_step_inputs

def grads_of(model, prefix):
    return [p.grad for name, p in model.named_parameters() if name.startswith(prefix) and p.requires_grad]


def has_gradient(grads):
    return any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("location_mode", ["prompt", "coordinates", "hybrid"])
@pytest.mark.parametrize("tlm_fusion", ["sum", "concat", "cross_attention"])
def test_contrastgeo_objective_every_mode_and_fusion(tiny_encoder, location_mode, tlm_fusion):
    model = build_tiny_model(tiny_encoder, location_mode=location_mode, tlm_fusion=tlm_fusion,
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
    model = build_tiny_model(tiny_encoder, tlm_fusion=tlm_fusion, fusion_encoder=fusion_encoder)
    output = model(**train_step_inputs(model), labels=LABELS)
    output.loss_tlm.backward()
    from modeling_contrastgeo.fusion import Adapter, ResidualMLP, TransformerFusionLayer

    expected_kind = {"mlp": ResidualMLP, "adapter": Adapter, "transformer": TransformerFusionLayer}[fusion_encoder]
    assert isinstance(model.matching_head.encoder, expected_kind)
    assert has_gradient(grads_of(model, "matching_head.encoder."))  # the chosen encoder is on the loss's path
    assert has_gradient(grads_of(model, "text_model."))


def test_cross_attention_output_depends_on_the_post(tiny_encoder):
    """The degenerate single key/value design would give the same match logits for every post."""
    model = build_tiny_model(tiny_encoder, tlm_fusion="cross_attention").eval()
    posts = model.tokenize_posts(["Grüezi mitenand", "Basler Fasnacht isch s Beschte"])
    places = model.tokenize_places(SWISS_PLACES)
    with torch.no_grad():
        pooled, encoder_output = model._encode_tokens(model.text_model, posts["input_ids"], posts["attention_mask"])
        post_embeds = torch.nn.functional.normalize(model.text_projection(pooled), dim=-1)
        location_embeds, location_tokens, location_mask = model._location_features(**places, return_tokens=True)
        same_place = torch.zeros(2, 1, dtype=torch.long)
        logits = model.match_logits(post_embeds, same_place, location_embeds, encoder_output.last_hidden_state,
                                    posts["attention_mask"], location_tokens, location_mask)
    assert not torch.allclose(logits[0], logits[1])


@pytest.mark.parametrize("kind", LOCATION_ENCODER_KINDS)
def test_every_location_encoder_kind(tiny_encoder, kind):
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", location_encoder_kind=kind)
    output = model(**train_step_inputs(model), labels=LABELS)
    output.loss.backward()
    assert torch.isfinite(output.loss)
    assert has_gradient(grads_of(model, "location_encoder."))


def test_hybrid_gate(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="hybrid", hybrid_combination="gate")
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    assert has_gradient(grads_of(model, "location_gate."))


def test_separate_prompt_encoder_gets_gradients(tiny_encoder):
    model = build_tiny_model(tiny_encoder, share_text_encoder=False)
    model(**train_step_inputs(model), labels=LABELS).loss.backward()
    assert has_gradient(grads_of(model, "location_text_model."))
    torch.testing.assert_close(model.location_text_model.embeddings.word_embeddings.weight,
                               model.text_model.embeddings.word_embeddings.weight)


def test_hard_negatives_in_forward_never_positive(tiny_encoder):
    # Places 0 and 4 are the same place under two entries: 4 must never be a negative for a post from 0.
    places = SWISS_PLACES + [dict(SWISS_PLACES[0])]
    model = build_tiny_model(tiny_encoder, num_hard_negatives=4)
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
    model = build_tiny_model(tiny_encoder, location_mode="classifier")
    output = model(**model.tokenize_posts(POSTS), labels=LABELS)
    assert output.logits_per_post.shape == (4, len(SWISS_PLACES))
    output.loss.backward()
    assert has_gradient(grads_of(model, "classifier_head."))
    with pytest.raises(ValueError, match="only its trained places"):
        model.geolocate(POSTS[:1], places=SWISS_PLACES[:2])


def test_csp_objective_trains_location_side_only(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", csp_num_random_locations=8)
    latlon = torch.tensor([[p["latitude"], p["longitude"]] for p in SWISS_PLACES])
    output = model(objective="csp", latlon=latlon, **model.tokenize_posts(POSTS))
    for term in ("loss", "loss_in_batch", "loss_random_location", "loss_dropout_view"):
        assert torch.isfinite(getattr(output, term)), term
    output.loss.backward()
    assert has_gradient(grads_of(model, "location_encoder."))
    assert not has_gradient(grads_of(model, "text_model."))


def test_csp_objective_with_precomputed_content_features(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", csp_content_dim=12, csp_num_random_locations=8)
    latlon = torch.tensor([[p["latitude"], p["longitude"]] for p in SWISS_PLACES])
    output = model(objective="csp", latlon=latlon, content_embeds=torch.randn(4, 12))
    output.loss.backward()
    assert has_gradient(grads_of(model, "content_projection."))
    model_without_projection = build_tiny_model(tiny_encoder, location_mode="coordinates")
    with pytest.raises(ValueError, match="csp_content_dim=12"):
        model_without_projection(objective="csp", latlon=latlon, content_embeds=torch.randn(4, 12))


def test_location_prior_objective(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", location_prior_num_classes=3)
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
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", location_prior_num_classes=3)
    latlon = torch.tensor([[47.4, 8.5], [46.9, 7.4]])
    for probabilities in (torch.full((2, 4), 0.25), torch.ones(2, 1), torch.full((1, 3), 1 / 3)):
        with pytest.raises(ValueError, match=re.escape(f"shape {tuple(probabilities.shape)}, expected (2, 3)")):
            model.apply_location_prior(probabilities, latlon)
    with pytest.raises(ValueError, match="finite numbers >= 0"):
        model.apply_location_prior(torch.tensor([[0.5, 0.5, 0.0], [-1.0, 1.0, 1.0]]), latlon)
    # One location may take a vector.
    assert model.apply_location_prior(torch.tensor([0.2, 0.3, 0.5]), latlon[:1]).shape == (1, 3)


def test_objective_needs_coordinate_encoder(tiny_encoder):
    model = build_tiny_model(tiny_encoder, location_mode="prompt")
    with pytest.raises(ValueError, match="coordinate encoder"):
        model(objective="csp", latlon=torch.zeros(2, 2), content_embeds=torch.zeros(2, 16))
    with pytest.raises(ValueError, match="unknown objective"):
        model(objective="nope")


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
    model = build_tiny_model(tiny_encoder)
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
    coordinates = build_tiny_model(tiny_encoder, location_mode="coordinates", location_prior_num_classes=2)
    latlon = torch.tensor([[47.0, 8.0], [46.0, 7.0]])
    csp = coordinates(latlon=latlon, content_embeds=torch.randn(2, 16), objective="csp", return_dict=False)
    prior = coordinates(latlon=latlon, labels=torch.tensor([0, 1]), objective="location-prior", return_dict=False)
    assert isinstance(csp, tuple) and csp[0].ndim == 0 and isinstance(prior, tuple) and prior[0].ndim == 0


def test_return_loss_without_labels_is_refused(tiny_encoder):
    """It returned loss=None, which a training loop then fails on far from the cause."""
    model = build_tiny_model(tiny_encoder)
    with pytest.raises(ValueError, match="return_loss=True: the contrastgeo loss needs labels"):
        model(**train_step_inputs(model), return_loss=True)
    coordinates = build_tiny_model(tiny_encoder, location_mode="coordinates", location_prior_num_classes=2)
    with pytest.raises(ValueError, match="return_loss=True: the location-prior loss needs labels"):
        coordinates(latlon=torch.tensor([[47.0, 8.0]]), objective="location-prior", return_loss=True)
    assert coordinates(latlon=torch.tensor([[47.0, 8.0]]), content_embeds=torch.randn(1, 16), objective="csp",
                       return_loss=True).loss is not None  # CSP's loss needs no labels


def test_a_fixed_logit_scale_stays_fixed_when_loaded(tiny_encoder, tmp_path):
    """transformers loads every weight as a trainable Parameter; learnable_logit_scale=False must survive that."""
    model = build_tiny_model(tiny_encoder, learnable_logit_scale=False)
    assert not model.logit_scale.requires_grad
    model.save_pretrained(tmp_path)
    loaded = ContrastGeoModel.from_pretrained(tmp_path)
    assert not loaded.logit_scale.requires_grad
    loaded, info = ContrastGeoModel.from_pretrained(tmp_path, output_loading_info=True)
    assert not loaded.logit_scale.requires_grad and not info["missing_keys"] and not info["unexpected_keys"]
    assert build_tiny_model(tiny_encoder).save_pretrained(tmp_path) is None
    assert ContrastGeoModel.from_pretrained(tmp_path).logit_scale.requires_grad
