"""benchmarks/speed_inference.py: the bare encoder batches posts as geolocate does, settings that cannot give a
measurement are refused, and the default model is what train.py builds."""

import argparse

import pytest
import torch

from tests.benchmark_scripts import load_benchmark_script
from tests.tiny_models import SWISS_PLACES


@pytest.fixture(scope="module")
def speed_inference():
    return load_benchmark_script("speed_inference")


def test_the_bare_encoder_batches_posts_by_length_as_geolocate_does(speed_inference, tiny_encoder):
    # geolocate and encode_posts sort the posts by length before batching (less padding); a bare encoder batching in
    # input order pads to 1.5 times the tokens on midwest-2017, which made the ratio flatter geolocate.
    from transformers import AutoModel, AutoTokenizer

    tokenizer, encoder = AutoTokenizer.from_pretrained(tiny_encoder), AutoModel.from_pretrained(tiny_encoder).eval()
    batches = []

    def recording_tokenizer(texts, **kwargs):
        batches.append(list(texts))
        return tokenizer(texts, **kwargs)

    posts = ["a much longer post about the lake and the mountains", "hi", "a post of middle length", "yo", "abc"]
    embeddings = speed_inference.bare_encoder_pass(encoder, recording_tokenizer, posts, batch_size=2, max_length=32)
    by_length = sorted(posts, key=len)
    assert batches == [by_length[0:2], by_length[2:4], by_length[4:]]
    batches.clear()
    one_by_one = speed_inference.bare_encoder_pass(encoder, recording_tokenizer, posts, batch_size=1, max_length=32)
    assert torch.allclose(embeddings, one_by_one, atol=1e-5)  # in input order, whatever the batching
    assert [batch[0] for batch in batches] == by_length


@pytest.mark.parametrize("flags, message", [
    (["--num-posts", "0"], "--num-posts must be at least 1, got 0"),
    (["--num-posts", "-60"], "--num-posts must be at least 1, got -60"),  # timed all but 60 posts, reported -3.6/s
    (["--repeats", "0"], "--repeats must be at least 1, got 0"),  # wrote ratio = nan over the committed report
    (["--batch-size", "0"], "--batch-size must be at least 1, got 0"),
    (["--threads", "-1"], "--threads must be at least 1, got -1"),
    (["--model", "/no/such/model"], "--model /no/such/model: no such folder"),
    (["--encoder", "/no/such/encoder"], "--encoder /no/such/encoder: no such folder"),
])
def test_settings_that_cannot_give_a_measurement_are_refused(speed_inference, capsys, flags, message):
    with pytest.raises(SystemExit):
        speed_inference.parse_args(flags)
    assert message in capsys.readouterr().err


def test_the_default_model_is_trainpys_default_configuration(speed_inference, tiny_encoder, monkeypatch):
    # The timed geolocate is that of a model train.py builds by default (n-gram channel, population prior), not a
    # bare from_text_encoder model without them.
    from contrastgeo.training import modeling
    from contrastgeo.training.defaults import MODEL_DEFAULTS

    monkeypatch.setattr(modeling, "resolve_text_encoder", lambda name_or_path: tiny_encoder)
    options = argparse.Namespace(model=None, encoder=None)
    model, bare_encoder = speed_inference.build_models(options, SWISS_PLACES)
    defaults = MODEL_DEFAULTS["contrastgeo"]
    assert model.config.char_ngram_buckets == defaults["char_ngram_buckets"] > 0
    assert model.char_ngram_featurizer is not None
    assert (model.config.place_prior, model.config.place_prior_weight) == ("population",
                                                                           defaults["place_prior_weight"])
    assert all(place.get("population") for place in model.config.places)  # saved as train.py saves them
    assert model.config.text_encoder_name_or_path == tiny_encoder and not bare_encoder.training
