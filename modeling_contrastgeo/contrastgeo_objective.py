"""The `contrastgeo` objective of ContrastGeoModel (Li & Lim 2024), mixed into it: Tweet-Location Contrastive loss
(TLC) over the candidate places plus Tweet-Location Matching loss (TLM) on fused (post, place) pairs with online hard
negatives (ALBEF-style sampling); in `location_mode="classifier"`, cross-entropy of a linear head instead.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutput

from .losses import sample_hard_negatives, tlc_loss, tlm_loss
from .text_encoder import WithTextModelOutput


@dataclass
class ContrastGeoOutput(WithTextModelOutput):
    """Output of the `contrastgeo` objective.

    Args:
        loss: `tlc_weight * loss_tlc + tlm_weight * loss_tlm` (when `return_loss` and labels are given).
        loss_tlc, loss_tlm: the two terms (`loss_tlm` is None when TLM is off or has no negatives).
        logits_per_post: (B, C) scaled cosine similarities of each post with each candidate place.
        post_embeds: (B, D) L2-normalised post embeddings.
        location_embeds: (C, D) L2-normalised place embeddings.
        match_logits: (B, 1 + k, 2) TLM logits for each post's true place (column 0) and its k hard negatives.
        negative_indices, negative_valid: (B, k) the sampled hard negatives and which of them are real negatives.
        text_model_output: the text encoder's output for the posts (`last_hidden_state`, and `hidden_states` /
            `attentions` as asked), when `forward` is asked for hidden states or attentions.
    """

    loss: torch.FloatTensor | None = None
    loss_tlc: torch.FloatTensor | None = None
    loss_tlm: torch.FloatTensor | None = None
    logits_per_post: torch.FloatTensor | None = None
    post_embeds: torch.FloatTensor | None = None
    location_embeds: torch.FloatTensor | None = None
    match_logits: torch.FloatTensor | None = None
    negative_indices: torch.LongTensor | None = None
    negative_valid: torch.BoolTensor | None = None
    text_model_output: BaseModelOutput | None = None


def _with_true_places(positive_mask, labels, shape) -> torch.Tensor:
    """A caller's `positive_mask` (B, C), with each post's own place marked: whatever else the mask says, the
    post's true place is its TLM positive and must never be drawn as one of its negatives."""
    if not torch.is_tensor(positive_mask) or positive_mask.dtype != torch.bool or positive_mask.shape != shape:
        got = (f"{positive_mask.dtype} of shape {tuple(positive_mask.shape)}" if torch.is_tensor(positive_mask)
               else type(positive_mask).__name__)
        raise ValueError(f"positive_mask must be a bool tensor of shape {tuple(shape)} (posts, candidate places), "
                         f"got {got}")
    true_place = nn.functional.one_hot(labels, shape[1]).to(device=positive_mask.device, dtype=torch.bool)
    return positive_mask | true_place


class ContrastGeoObjectiveMixin:
    """`forward(objective="contrastgeo")` of ContrastGeoModel, and its TLM pieces (`equal_place_mask`,
    `match_logits`), which re-ranking at inference uses too."""

    def _forward_contrastgeo(self, post_inputs, place_input_ids, place_attention_mask, place_latlon, labels,
                             positive_mask, return_loss):
        if post_inputs["input_ids"] is None:
            raise ValueError("the contrastgeo objective needs input_ids (tokenized posts)")
        config = self.config
        attention_mask = post_inputs["attention_mask"]
        post_features, encoder_output = self._post_features(**post_inputs)
        text_model_output = (
            encoder_output if post_inputs["output_attentions"] or post_inputs["output_hidden_states"] else None
        )
        if self.classifier_head is not None:
            return self._forward_classifier(post_features, labels, return_loss, text_model_output)
        post_embeds = nn.functional.normalize(post_features, dim=-1)
        use_tlm = config.tlm_weight > 0 and config.num_hard_negatives > 0
        compute_loss = labels is not None and return_loss is not False
        location_embeds, location_token_states, location_token_mask = self._location_features(
            place_input_ids, place_attention_mask, place_latlon, return_tokens=use_tlm and compute_loss
        )
        logit_scale = self.scaled_logit_scale()
        logits_per_post = logit_scale * post_embeds @ location_embeds.t()
        # Every field in one constructor call: a ModelOutput orders its keys (and `to_tuple`) by when each was set.
        embeddings = {"logits_per_post": logits_per_post, "post_embeds": post_embeds,
                      "location_embeds": location_embeds}
        if not compute_loss:
            return ContrastGeoOutput(**embeddings, text_model_output=text_model_output)

        loss_tlc, _ = tlc_loss(post_embeds, location_embeds, labels, logit_scale, config.label_smoothing)
        loss = config.tlc_weight * loss_tlc
        matching = {}
        num_places = location_embeds.shape[0]
        if use_tlm and num_places > 1:
            if positive_mask is None:
                positive_mask = self.equal_place_mask(labels, place_input_ids, place_latlon)
            else:
                positive_mask = _with_true_places(positive_mask, labels, logits_per_post.shape)
            # Sampled from the temperature-scaled similarity, as ALBEF: raw cosines give near-uniform weights.
            negative_indices, negative_valid = sample_hard_negatives(
                logits_per_post.detach(), positive_mask, config.num_hard_negatives,
                strategy=config.hard_negative_strategy,
            )
            candidates = torch.cat([labels.unsqueeze(1), negative_indices], dim=1)  # (B, 1 + k)
            match_logits = self.match_logits(
                post_embeds, candidates, location_embeds, encoder_output.last_hidden_state, attention_mask,
                location_token_states, location_token_mask,
            )
            loss_tlm = tlm_loss(match_logits[:, 0], match_logits[:, 1:], negative_valid)
            loss = loss + config.tlm_weight * loss_tlm
            matching = {"loss_tlm": loss_tlm, "match_logits": match_logits, "negative_indices": negative_indices,
                        "negative_valid": negative_valid}
        return ContrastGeoOutput(loss=loss, loss_tlc=loss_tlc, **embeddings, **matching,
                                 text_model_output=text_model_output)

    def _forward_classifier(self, post_features, labels, return_loss, text_model_output):
        logits = self.classifier_head(post_features)
        loss = None
        if labels is not None and return_loss is not False:
            if labels.min() < 0 or labels.max() >= logits.shape[-1]:
                raise ValueError(f"labels must be in [0, {logits.shape[-1]}), got {labels.min()}..{labels.max()}")
            loss = nn.functional.cross_entropy(logits, labels, label_smoothing=self.config.label_smoothing)
        return ContrastGeoOutput(loss=loss, loss_tlc=loss, logits_per_post=logits,
                                 post_embeds=nn.functional.normalize(post_features, dim=-1),
                                 text_model_output=text_model_output)

    def equal_place_mask(self, labels, place_input_ids=None, place_latlon=None) -> torch.Tensor:
        """(B, C) True where candidate c is the post's place or the same place under another index: identical in
        what the location representation reads (the prompt tokens in `prompt` mode, the coordinates in
        `coordinates` mode, both in `hybrid` mode), hence the same embedding. Such places must never be drawn as
        negatives. Inputs the mode does not read are ignored here as in `_location_features`: a prompt-mode place
        passed with other coordinates is still the same place."""
        config = self.config
        keys = []
        if place_input_ids is not None and config.uses_prompts:
            keys.append(place_input_ids.reshape(-1, len(config.prompt_templates) * place_input_ids.shape[-1]))
        if place_latlon is not None and config.uses_coordinates:
            keys.append(place_latlon.to(torch.float64))
        if not keys:
            needs = {"prompt": "place_input_ids", "coordinates": "place_latlon"}.get(
                config.location_mode, "place_input_ids and place_latlon")
            raise ValueError(f"equal_place_mask needs {needs} (location_mode={config.location_mode!r})")
        place_keys = torch.cat([key.to(torch.float64) for key in keys], dim=1)
        _, place_group = torch.unique(place_keys, dim=0, return_inverse=True)
        return place_group[labels].unsqueeze(1) == place_group.unsqueeze(0)

    def match_logits(self, post_embeds, candidates, location_embeds, post_token_states=None,
                     post_attention_mask=None, location_token_states=None, location_token_mask=None):
        """(B, P, 2) TLM logits of each post with its P candidate places (`candidates`: (B, P) place indices)."""
        candidate_tokens = candidate_mask = None
        if location_token_states is not None:
            candidate_tokens = location_token_states[candidates]
            candidate_mask = location_token_mask[candidates]
        return self.matching_head(
            post_embeds, location_embeds[candidates], post_token_states=post_token_states,
            post_attention_mask=post_attention_mask, location_token_states=candidate_tokens,
            location_attention_mask=candidate_mask,
        )


__all__ = ["ContrastGeoObjectiveMixin", "ContrastGeoOutput"]
