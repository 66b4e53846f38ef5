"""What the text encoder cannot do is refused by name before torch fails inside it: inputs longer than its position
embeddings, activation checkpointing in an encoder without checkpointing layers, an encoder-decoder model, LoRA in an
encoder without the default adapter targets."""

import pytest

from modeling_contrastgeo import ContrastGeoModel
from tests.tiny_models import SWISS_PLACES, TRAINING_BERT, make_tiny_encoder, save_tiny_model
from tests.train_runs import geolocation_argv, one_torch_thread, tiny, train  # noqa: F401 (fixtures)

LONG_POST = "grüezi mitenand " * 200


def _assert_posts_are_cut_at_most_to(model, limit):
    """`model` (built with a longer max_post_length) refuses posts, and takes them once cut to `limit` tokens."""
    assert model.text_length_limit() == limit
    too_long = model.config.max_post_length
    with pytest.raises(ValueError, match=rf"max_post_length {too_long} is more tokens than the text encoder takes "
                                         rf"\({limit}\)"):
        model.geolocate([LONG_POST])
    model.config.max_post_length = limit
    assert len(model.geolocate([LONG_POST])) == 1


def test_posts_longer_than_the_encoder_takes_are_refused_by_the_model(tmp_path, minilm_path):
    encoder = make_tiny_encoder(tmp_path / "encoder", minilm_path, max_position_embeddings=64)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, max_post_length=128)
    _assert_posts_are_cut_at_most_to(model, 64)


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


def _tiny_ctrl_encoder(folder, minilm_path):
    from transformers import AutoTokenizer, CTRLConfig, CTRLModel

    return save_tiny_model(folder, AutoTokenizer.from_pretrained(minilm_path), CTRLModel, CTRLConfig, n_embd=32,
                           n_layer=2, n_head=2, dff=37)


def test_gradient_checkpointing_names_an_encoder_without_it(tiny, tmp_path, minilm_path):
    # CTRL's layers have no activation checkpointing in transformers.
    encoder = _tiny_ctrl_encoder(tmp_path / "ctrl", minilm_path)
    argv = geolocation_argv(tiny, tmp_path / "out", "--model-name-or-path", encoder, "--no-lora",
                            "--gradient-checkpointing")
    with pytest.raises(ValueError, match=r"--gradient-checkpointing: the text encoder \(CTRLModel\) has no layer"):
        train(argv)
    assert not (tmp_path / "out" / "model.safetensors").exists()


def test_roberta_style_positions_count_from_after_the_padding_index(tmp_path, minilm_path):
    from transformers import AutoTokenizer, RobertaConfig, RobertaModel

    # RoBERTa numbers positions from padding_idx + 1: 34 position embeddings take 32 tokens. The tokenizer states no
    # limit (as tokenizers saved without one), so only the encoder's positions bound the length.
    tokenizer = AutoTokenizer.from_pretrained(minilm_path, model_max_length=int(1e30))
    encoder = save_tiny_model(tmp_path / "roberta", tokenizer, RobertaModel, RobertaConfig, hidden_size=32,
                              num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                              max_position_embeddings=34)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, max_post_length=34,
                                               max_prompt_length=16)
    _assert_posts_are_cut_at_most_to(model, 32)


def test_an_encoder_decoder_model_is_refused_by_name(tmp_path, minilm_path):
    from transformers import AutoTokenizer, T5Config, T5Model

    encoder = save_tiny_model(tmp_path / "t5", AutoTokenizer.from_pretrained(minilm_path), T5Model, T5Config,
                              d_model=32, d_kv=16, num_heads=2, d_ff=37, num_layers=2, decoder_start_token_id=0)
    with pytest.raises(ValueError, match=rf"the text encoder {encoder} is an encoder-decoder model \(t5\)"):
        ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES)


def test_lora_by_default_names_an_encoder_without_the_default_targets(tiny, tmp_path, minilm_path):
    # CTRL names its attention projections Wq, Wk, Wv: none of the families' names LoRA adapts by default.
    encoder = _tiny_ctrl_encoder(tmp_path / "ctrl", minilm_path)
    with pytest.raises(ValueError, match=r"LoRA: the text encoder \(CTRLModel\) has none of the attention projections "
                                         r"adapted by default .* --lora-target-modules NAME\.\.\., or .* --no-lora"):
        train(geolocation_argv(tiny, tmp_path / "out", "--model-name-or-path", encoder))
    assert not (tmp_path / "out" / "model.safetensors").exists()
