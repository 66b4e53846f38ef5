"""The text encoder inside ContrastGeoModel: its hidden states and attentions reach the caller as CLIP's do, forward
refuses the keyword arguments it would ignore, pooling serves every encoder family, and a causal encoder (GPT-2) is
refused with `pooling="cls"`."""

import pytest
import torch
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from modeling_contrastgeo import ContrastGeoModel
from modeling_contrastgeo.text_encoder import first_token_sees_later_tokens
from tests.tiny_models import (LABELS, POSTS, SWISS_PLACES, build_tiny_model, save_tiny_model,
                               train_step_inputs)

NUM_LAYERS = 2  # of the tiny encoders, as make_tiny_encoder's
TINY = dict(hidden_size=32, num_hidden_layers=NUM_LAYERS, num_attention_heads=2, intermediate_size=37)


@pytest.fixture(scope="module")
def tokenizer(minilm_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(minilm_path)


def eager_model(tiny_encoder, **config_kwargs):
    """A tiny model with eager attention, the one under which transformers returns attention weights."""
    model = build_tiny_model(tiny_encoder, **config_kwargs)
    model.set_attn_implementation("eager")
    return model


def assert_encoder_output_of_posts(encoder_output, model, post_inputs):
    """`encoder_output` is the text encoder's own output on the posts: every layer's states and attentions."""
    expected = model.text_model(input_ids=post_inputs["input_ids"], attention_mask=post_inputs["attention_mask"],
                                token_type_ids=post_inputs["token_type_ids"], output_hidden_states=True,
                                output_attentions=True)
    batch, length = post_inputs["input_ids"].shape
    assert len(encoder_output.hidden_states) == NUM_LAYERS + 1 and len(encoder_output.attentions) == NUM_LAYERS
    assert encoder_output.attentions[0].shape == (batch, 2, length, length)
    for value, reference in zip(encoder_output.hidden_states + encoder_output.attentions,
                                expected.hidden_states + expected.attentions):
        torch.testing.assert_close(value, reference)
    torch.testing.assert_close(encoder_output.last_hidden_state, encoder_output.hidden_states[-1])


def test_forward_returns_the_text_encoders_hidden_states_and_attentions(tiny_encoder):
    """They were computed for nothing: forward took output_hidden_states / output_attentions into **kwargs."""
    model = eager_model(tiny_encoder)
    inputs = train_step_inputs(model)
    output = model(**inputs, labels=LABELS, output_hidden_states=True, output_attentions=True)
    assert isinstance(output.text_model_output, BaseModelOutput)
    assert_encoder_output_of_posts(output.text_model_output, model, inputs)
    assert model(**inputs, labels=LABELS).text_model_output is None  # nothing asked, nothing kept
    only_states = model(**inputs, output_hidden_states=True).text_model_output
    assert only_states.hidden_states is not None and only_states.attentions is None
    classifier = eager_model(tiny_encoder, location_mode="classifier")
    assert_encoder_output_of_posts(
        classifier(**classifier.tokenize_posts(POSTS), labels=LABELS, output_hidden_states=True,
                   output_attentions=True).text_model_output,
        classifier, classifier.tokenize_posts(POSTS))


def test_output_flags_default_to_the_config_values(tiny_encoder):
    model = build_tiny_model(tiny_encoder)
    inputs = train_step_inputs(model)
    model.config.output_hidden_states = True
    assert len(model(**inputs).text_model_output.hidden_states) == NUM_LAYERS + 1
    assert model(**inputs, output_hidden_states=False).text_model_output is None  # the argument wins
    # get_text_features keeps returning a tensor to the callers that take one.
    assert model.encode_posts(POSTS).shape == (len(POSTS), 16)


def test_return_dict_false_puts_the_encoder_output_last_as_a_nested_tuple(tiny_encoder):
    model = eager_model(tiny_encoder)
    inputs = train_step_inputs(model)
    torch.manual_seed(0)
    output = model(**inputs, labels=LABELS, output_hidden_states=True, output_attentions=True)
    torch.manual_seed(0)
    as_tuple = model(**inputs, labels=LABELS, output_hidden_states=True, output_attentions=True, return_dict=False)
    assert list(output.keys())[0] == "loss" and list(output.keys())[-1] == "text_model_output"
    assert len(as_tuple) == len(output.keys())
    torch.testing.assert_close(as_tuple[0], output.loss)
    last_hidden_state, hidden_states, attentions = as_tuple[-1]
    torch.testing.assert_close(last_hidden_state, output.text_model_output.last_hidden_state)
    assert len(hidden_states) == NUM_LAYERS + 1 and len(attentions) == NUM_LAYERS


def test_csp_objective_returns_the_encoder_output_of_text_content(tiny_encoder):
    model = eager_model(tiny_encoder, location_mode="coordinates", csp_num_random_locations=8)
    latlon = torch.tensor([[p["latitude"], p["longitude"]] for p in SWISS_PLACES])
    posts = model.tokenize_posts(POSTS)
    output = model(objective="csp", latlon=latlon, **posts, output_hidden_states=True, output_attentions=True)
    assert_encoder_output_of_posts(output.text_model_output, model, posts)
    assert model(objective="csp", latlon=latlon, **posts).text_model_output is None
    # Precomputed content features run no text encoder: there is no encoder output to return.
    assert model(objective="csp", latlon=latlon, content_embeds=torch.randn(4, 16),
                 output_hidden_states=True).text_model_output is None


def test_get_text_features_returns_the_encoder_output_when_asked(tiny_encoder):
    model = eager_model(tiny_encoder)
    posts = model.tokenize_posts(POSTS)
    features = model.get_text_features(**posts)
    assert isinstance(features, torch.Tensor) and features.shape == (len(POSTS), 16)
    output = model.get_text_features(**posts, output_hidden_states=True, output_attentions=True)
    assert isinstance(output, BaseModelOutputWithPooling)
    torch.testing.assert_close(output.pooler_output, features)
    assert_encoder_output_of_posts(output, model, posts)


@pytest.mark.parametrize("name", ["position_ids", "num_items_in_batch", "past_key_values", "output_attention"])
def test_forward_refuses_keyword_arguments_it_would_ignore(tiny_encoder, name):
    model = build_tiny_model(tiny_encoder)
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        model(**train_step_inputs(model), labels=LABELS, **{name: torch.zeros(4, 1, dtype=torch.long)})


# peft reads transformers' deprecated alias, as in contrastgeo/training/lora.py: their warning, not ours.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_forward_takes_what_peft_wrappers_pass(tiny_encoder):
    """peft's task models call forward(..., inputs_embeds=None, output_attentions=None, output_hidden_states=None,
    return_dict=None); a real inputs_embeds (peft's prompt learning) would be ignored, so it is refused."""
    from peft import LoraConfig, get_peft_model

    model = build_tiny_model(tiny_encoder)
    inputs = train_step_inputs(model)
    with pytest.raises(TypeError, match="cannot use inputs_embeds"):
        model(**inputs, inputs_embeds=torch.zeros(4, 3, 32))
    torch.manual_seed(0)
    expected = model(**inputs, labels=LABELS, inputs_embeds=None)
    wrapped = get_peft_model(model, LoraConfig(task_type="FEATURE_EXTRACTION", target_modules=["query", "value"]))
    torch.manual_seed(0)
    output = wrapped(**inputs, labels=LABELS, output_hidden_states=True)
    torch.testing.assert_close(output.loss, expected.loss)  # LoRA's B matrices start at zero
    assert len(output.text_model_output.hidden_states) == NUM_LAYERS + 1
    assert ContrastGeoModel.accepts_loss_kwargs is False  # transformers' Trainer passes no num_items_in_batch


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


def save_tiny_gpt2(folder, tokenizer):
    from transformers import GPT2Config, GPT2Model

    return save_tiny_model(folder, tokenizer, GPT2Model, GPT2Config, n_embd=32, n_layer=NUM_LAYERS, n_head=2,
                           n_positions=128, bos_token_id=tokenizer.cls_token_id, eos_token_id=tokenizer.sep_token_id)


def test_a_causal_encoder_with_cls_pooling_is_refused_when_built_and_when_loaded(tmp_path, tokenizer):
    """GPT-2's first token attends to nothing after it: with cls pooling every post got the embedding of [CLS]."""
    encoder = save_tiny_gpt2(tmp_path / "gpt2", tokenizer)
    refusal = (r"pooling='cls' cannot pool the causal \(decoder-only\) text encoder .* \(gpt2, GPT2Model\).*"
               r"pooling='mean'")
    with pytest.raises(ValueError, match=refusal):
        ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, pooling="cls")
    ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES).save_pretrained(tmp_path / "saved")
    with pytest.raises(ValueError, match=refusal):
        ContrastGeoModel.from_pretrained(tmp_path / "saved", pooling="cls")


def test_a_causal_encoder_with_mean_pooling_embeds_each_post_by_all_its_tokens(tmp_path, tokenizer):
    encoder = save_tiny_gpt2(tmp_path / "gpt2", tokenizer)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES)
    embeddings = model.encode_posts(POSTS)
    assert not torch.allclose(embeddings[0], embeddings[1], atol=1e-4)
    # Right padding comes after a post's tokens, which a causal encoder never lets them see.
    torch.testing.assert_close(model.encode_posts(POSTS[-1:]), embeddings[-1:])
    assert len(model.geolocate(POSTS, top_k=2)) == len(POSTS)


def bidirectional_families(tokenizer):
    """(model class, config class, config fields) of each encoder family the README names, tiny."""
    import transformers as hf

    return {
        "bert": (hf.BertModel, hf.BertConfig, TINY),
        "roberta": (hf.RobertaModel, hf.RobertaConfig, {**TINY, "max_position_embeddings": 130}),
        "xlm-roberta": (hf.XLMRobertaModel, hf.XLMRobertaConfig, {**TINY, "max_position_embeddings": 130}),
        "distilbert": (hf.DistilBertModel, hf.DistilBertConfig, dict(dim=32, n_layers=2, n_heads=2, hidden_dim=37)),
        "mpnet": (hf.MPNetModel, hf.MPNetConfig, TINY),
        "deberta-v2": (hf.DebertaV2Model, hf.DebertaV2Config, TINY),
        "electra": (hf.ElectraModel, hf.ElectraConfig, {**TINY, "embedding_size": 16}),
        "albert": (hf.AlbertModel, hf.AlbertConfig, {**TINY, "embedding_size": 16}),
        "modernbert": (hf.ModernBertModel, hf.ModernBertConfig, {**TINY, "pad_token_id": tokenizer.pad_token_id}),
    }


@pytest.mark.parametrize("family", ["bert", "roberta", "xlm-roberta", "distilbert", "mpnet", "deberta-v2", "electra",
                                    "albert", "modernbert"])
def test_bidirectional_encoders_of_every_family_take_cls_pooling(tmp_path, tokenizer, family):
    model_class, config_class, fields = bidirectional_families(tokenizer)[family]
    encoder = save_tiny_model(tmp_path / family, tokenizer, model_class, config_class, **fields)
    model = ContrastGeoModel.from_text_encoder(str(encoder), places=SWISS_PLACES, pooling="cls")
    embeddings = model.encode_posts(POSTS)
    assert not torch.allclose(embeddings[0], embeddings[1], atol=1e-4)


def test_the_causal_probe_leaves_modes_and_random_state_alone(tmp_path, tokenizer, tiny_encoder):
    from transformers import AutoModel

    gpt2 = AutoModel.from_pretrained(save_tiny_gpt2(tmp_path / "gpt2", tokenizer))
    bert = AutoModel.from_pretrained(tiny_encoder)
    for encoder, is_causal in ((gpt2, True), (bert, False)):
        encoder.train()
        encoder.get_input_embeddings().eval()  # a caller's own choice of modes, which the probe must keep
        modes = [module.training for module in encoder.modules()]
        random_state = torch.get_rng_state()
        # With dropout on, GPT-2's two probe runs would differ at the first position too, and look bidirectional.
        assert first_token_sees_later_tokens(encoder) is not is_causal
        assert torch.equal(torch.get_rng_state(), random_state)
        assert [module.training for module in encoder.modules()] == modes
