"""What the text encoder cannot do is refused by name before torch fails inside it: inputs longer than its position
embeddings, activation checkpointing in an encoder without checkpointing layers."""

import pytest

from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import SWISS_PLACES, TRAINING_BERT, make_tiny_encoder
from tests.train_runs import geolocation_argv, one_torch_thread, tiny, train  # noqa: F401 (fixtures)

LONG_POST = "grüezi mitenand " * 200


def test_posts_longer_than_the_encoder_takes_are_refused_by_the_model(tmp_path, minilm_path):
    encoder = make_tiny_encoder(tmp_path / "encoder", minilm_path, max_position_embeddings=64)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, max_post_length=128)
    assert model.text_length_limit() == 64
    with pytest.raises(ValueError, match=r"max_post_length 128 is more tokens than the text encoder takes \(64\)"):
        model.geolocate([LONG_POST])
    model.config.max_post_length = 64
    assert len(model.geolocate([LONG_POST])) == 1


def test_prompts_longer_than_the_encoder_takes_are_refused_by_the_model(tmp_path, minilm_path):
    encoder = make_tiny_encoder(tmp_path / "encoder", minilm_path, max_position_embeddings=64)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, max_post_length=64,
                                               max_prompt_length=128)
    with pytest.raises(ValueError, match=r"max_prompt_length 128 is more tokens than the text encoder takes \(64\): "
                                         r"set it to 64 or less \(train.py --model-config max_prompt_length=N\)"):
        model.geolocate(["grüezi"])
    with pytest.raises(ValueError, match="max_prompt_length 128"):
        model.check_text_lengths()


def test_train_refuses_a_post_length_beyond_the_encoder_before_training(tiny, tmp_path, minilm_path):
    encoder = make_tiny_encoder(tmp_path / "encoder", minilm_path, **TRAINING_BERT)  # 512 positions
    argv = geolocation_argv(tiny, tmp_path / "out", "--model-name-or-path", encoder, "--max-post-length", 1024)
    with pytest.raises(ValueError, match=r"max_post_length 1024 .* \(512\): set it to 512 or less "
                                         r"\(train.py --max-post-length N\)"):
        train(argv)
    assert not (tmp_path / "out" / "log_history.jsonl").exists()


def test_gradient_checkpointing_names_an_encoder_without_it(tiny, tmp_path, minilm_path):
    from transformers import AutoTokenizer, CTRLConfig, CTRLModel

    # CTRL's layers have no activation checkpointing in transformers.
    tokenizer = AutoTokenizer.from_pretrained(minilm_path)
    encoder = tmp_path / "ctrl"
    CTRLModel(CTRLConfig(vocab_size=tokenizer.vocab_size, n_embd=32, n_layer=2, n_head=2, dff=37)).save_pretrained(
        encoder)
    tokenizer.save_pretrained(encoder)
    argv = geolocation_argv(tiny, tmp_path / "out", "--model-name-or-path", encoder, "--no-lora",
                            "--gradient-checkpointing")
    with pytest.raises(ValueError, match=r"--gradient-checkpointing: the text encoder \(CTRLModel\) has no layer"):
        train(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()
