"""TLM's hard negatives at the model level: what counts as "the same place" must follow what the location
representation reads (prompt mode reads names only, coordinates mode coordinates only), and the post's own place is
never a negative, whatever `positive_mask` a caller passes."""

import pytest
import torch

from tests.tiny_models import LABELS, SWISS_PLACES, build_tiny_model, train_step_inputs

NUM_DRAWS = 8


def _place_inputs(inputs):
    return {name: value for name, value in inputs.items() if name.startswith("place_")}


def _drawn_negatives(model, inputs, **forward_kwargs):
    """Every valid negative drawn for each post over NUM_DRAWS seeded forwards: a list of sets, one per post."""
    drawn = [set() for _ in LABELS.tolist()]
    for seed in range(NUM_DRAWS):
        torch.manual_seed(seed)
        output = model(**inputs, labels=LABELS, **forward_kwargs)
        for row in range(LABELS.shape[0]):
            drawn[row].update(output.negative_indices[row][output.negative_valid[row]].tolist())
    return drawn


def _assert_the_twin_of_place_0_is_never_drawn(model, inputs):
    """Place 4 has place 0's embedding; no post draws its own place, and place 0's posts draw neither place."""
    with torch.no_grad():
        location_embeds = model.get_location_features(**_place_inputs(inputs))
    torch.testing.assert_close(location_embeds[4], location_embeds[0])
    drawn = _drawn_negatives(model, inputs)
    for row, label in enumerate(LABELS.tolist()):
        assert label not in drawn[row]
        if label == 0:
            assert drawn[row] == {1, 2, 3}, f"place 0's post drew {drawn[row]}: its twin, place 4, is no negative"


def test_prompt_mode_never_draws_a_same_name_place_even_when_coordinates_are_passed(tiny_encoder):
    # Place 4 has place 0's name at other coordinates: in prompt mode its embedding is place 0's, so drawing it as a
    # negative of a post from place 0 asks the matching head to answer "match" and "no match" for one input.
    places = SWISS_PLACES + [dict(SWISS_PLACES[0], latitude=10.0, longitude=20.0)]
    model = build_tiny_model(tiny_encoder, location_mode="prompt", num_hard_negatives=4)
    inputs = train_step_inputs(model, places=places)
    # A caller (a collator shared by every location mode) hands the coordinates over too; prompt mode ignores them.
    inputs["place_latlon"] = torch.tensor([[place["latitude"], place["longitude"]] for place in places])
    _assert_the_twin_of_place_0_is_never_drawn(model, inputs)


def test_coordinates_mode_never_draws_a_place_at_the_same_coordinates_under_another_name(tiny_encoder):
    places = SWISS_PLACES + [dict(SWISS_PLACES[0], name="Zurich (English spelling)")]
    model = build_tiny_model(tiny_encoder, location_mode="coordinates", num_hard_negatives=4)
    inputs = train_step_inputs(model, places=places)
    # Prompt token ids from a prompt-mode model of the same tokenizer: coordinates mode ignores them.
    prompt_model = build_tiny_model(tiny_encoder, location_mode="prompt")
    inputs.update(prompt_model.tokenize_places(places))
    model.eval()  # no dropout: identical coordinates give identical embeddings
    _assert_the_twin_of_place_0_is_never_drawn(model, inputs)


def test_the_true_place_is_never_a_negative_whatever_positive_mask_is_passed(tiny_encoder):
    model = build_tiny_model(tiny_encoder, num_hard_negatives=3)
    inputs = train_step_inputs(model)
    # A mask that marks only the *other* equal places (here none), not the post's own place.
    no_positives = torch.zeros(LABELS.shape[0], len(SWISS_PLACES), dtype=torch.bool)
    drawn = _drawn_negatives(model, inputs, positive_mask=no_positives)
    for row, label in enumerate(LABELS.tolist()):
        assert label not in drawn[row], f"post {row}'s own place {label} was drawn as its negative"
    torch.manual_seed(0)
    output = model(**inputs, labels=LABELS, positive_mask=no_positives)
    assert output.negative_valid.all()  # 3 other places, 3 slots: every slot still holds a real negative


def test_a_positive_mask_of_the_wrong_shape_is_refused_not_broadcast(tiny_encoder):
    model = build_tiny_model(tiny_encoder, num_hard_negatives=2)
    inputs = train_step_inputs(model)
    one_row = torch.zeros(1, len(SWISS_PLACES), dtype=torch.bool)
    with pytest.raises(ValueError, match="positive_mask must be a bool tensor of shape"):
        model(**inputs, labels=LABELS, positive_mask=one_row)
