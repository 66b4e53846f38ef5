"""CSP's objectives on the coordinate location encoder (Mai et al. 2023), mixed into ContrastGeoModel.

- `csp`: self-supervised pre-training of the location encoder against frozen content embeddings: in-batch (B),
  random-location (L) and dropout-view (D) contrastive terms.
- `location-prior`: location encoder + class head trained with the presence/absence loss; `apply_location_prior`
  multiplies a content classifier's probabilities by it.
"""

from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutput
from transformers.utils import ModelOutput

from .location_encoding import validate_latlon
from .csp_losses import csp_loss, presence_absence_loss, sample_uniform_sphere
from .text_encoder import WithTextModelOutput


@dataclass
class CSPOutput(WithTextModelOutput):
    """Output of the `csp` objective: the total loss, its three terms and the embeddings; `text_model_output`, the
    text encoder's output on the content text, when `forward` is asked for hidden states or attentions and the content
    is text (`input_ids`)."""

    loss: torch.FloatTensor | None = None
    loss_in_batch: torch.FloatTensor | None = None
    loss_random_location: torch.FloatTensor | None = None
    loss_dropout_view: torch.FloatTensor | None = None
    location_embeds: torch.FloatTensor | None = None
    content_embeds: torch.FloatTensor | None = None
    text_model_output: BaseModelOutput | None = None


@dataclass
class LocationPriorOutput(ModelOutput):
    """Output of the `location-prior` objective: presence/absence loss and (B, num_classes) logits."""

    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None


class CSPObjectivesMixin:
    """`forward(objective="csp" | "location-prior")` paths and the location prior of ContrastGeoModel."""

    def _check_location_encoder(self, objective):
        if self.location_encoder is None:
            raise ValueError(
                f"the {objective} objective needs a coordinate encoder: use location_mode='coordinates' or 'hybrid'"
            )

    def _forward_csp(self, latlon, content_embeds, input_ids, attention_mask, token_type_ids, return_loss,
                     output_attentions=False, output_hidden_states=False):
        self._check_location_encoder("csp")
        if latlon is None:
            raise ValueError("the csp objective needs latlon (B, 2) [latitude, longitude]")
        config = self.config
        text_model_output = None
        if content_embeds is not None:
            if self.content_projection is not None:
                content_embeds = self.content_projection(content_embeds)
            elif content_embeds.shape[-1] != config.embed_dim:
                raise ValueError(
                    f"content_embeds have size {content_embeds.shape[-1]} but the embedding size is "
                    f"{config.embed_dim}: set csp_content_dim={content_embeds.shape[-1]} to learn a projection"
                )
        elif input_ids is not None:
            # CSP keeps the content encoder frozen: only the location side (and the projection) learns.
            with torch.no_grad():
                pooled, encoder_output = self._encode_tokens(self.text_model, input_ids, attention_mask,
                                                             token_type_ids, output_attentions, output_hidden_states)
            content_embeds = self.text_projection(pooled)
            if output_attentions or output_hidden_states:
                text_model_output = encoder_output
        else:
            raise ValueError("the csp objective needs content_embeds or input_ids (content text)")
        location_embeds = self.location_encoder(latlon)
        if return_loss is False:
            return CSPOutput(location_embeds=location_embeds, content_embeds=content_embeds,
                             text_model_output=text_model_output)
        random_location_embeds = None
        if config.csp_random_location_weight and config.csp_num_random_locations:
            random_latlon = sample_uniform_sphere(
                config.csp_num_random_locations, device=latlon.device, dtype=torch.float32
            )
            random_location_embeds = self.location_encoder(random_latlon)
        second_view = self.location_encoder(latlon) if config.csp_dropout_view_weight else None
        losses = csp_loss(
            location_embeds, content_embeds, random_location_embeds, second_view,
            in_batch_weight=config.csp_in_batch_weight,
            random_location_weight=config.csp_random_location_weight,
            dropout_view_weight=config.csp_dropout_view_weight,
            in_batch_temperature=config.csp_in_batch_temperature,
            random_location_temperature=config.csp_random_location_temperature,
            dropout_view_temperature=config.csp_dropout_view_temperature,
        )
        # Every field in one constructor call: a ModelOutput orders its keys (and `to_tuple`) by when each was set.
        return CSPOutput(loss=losses["loss"], loss_in_batch=losses["loss_in_batch"],
                         loss_random_location=losses["loss_random_location"],
                         loss_dropout_view=losses["loss_dropout_view"], location_embeds=location_embeds,
                         content_embeds=content_embeds, text_model_output=text_model_output)

    def location_prior_logits(self, latlon) -> torch.Tensor:
        """(N, num_classes) logits of the location prior: sigmoid(logit) = presence of the class at latlon."""
        if self.location_prior_head is None:
            raise ValueError("this model has no location prior head: set location_prior_num_classes")
        return self.location_prior_head(self.location_encoder(latlon))

    def _forward_location_prior(self, latlon, labels, return_loss):
        self._check_location_encoder("location-prior")
        if latlon is None:
            raise ValueError("the location-prior objective needs latlon (B, 2) [latitude, longitude]")
        logits = self.location_prior_logits(latlon)
        if labels is None or return_loss is False:
            return LocationPriorOutput(logits=logits)
        random_latlon = sample_uniform_sphere(latlon.shape[0], device=latlon.device, dtype=torch.float32)
        positive_weight = self.config.location_prior_positive_weight or float(logits.shape[-1])
        loss = presence_absence_loss(
            logits, labels, self.location_prior_logits(random_latlon), positive_weight=positive_weight
        )
        return LocationPriorOutput(loss=loss, logits=logits)

    @torch.no_grad()
    def apply_location_prior(self, class_probabilities, latlon) -> torch.Tensor:
        """CSP's combination: p(y | content, x) proportional to p(y | content) * sigmoid(e(x) . T_y).

        `class_probabilities` (N, num_classes), columns in the order of `config.location_prior_class_names`, one row
        per location of `latlon` (N, 2); a single location may take a (num_classes,) vector."""
        latlon = torch.as_tensor(latlon, dtype=torch.float32, device=self.logit_scale.device)
        validate_latlon(latlon)
        prior = torch.sigmoid(self.location_prior_logits(latlon))
        probabilities = torch.as_tensor(class_probabilities, device=prior.device, dtype=prior.dtype)
        if probabilities.ndim == 1 and prior.shape[0] == 1:
            probabilities = probabilities[None]
        if probabilities.shape != prior.shape:
            raise ValueError(
                f"class_probabilities have shape {tuple(probabilities.shape)}, expected {tuple(prior.shape)}: one row "
                f"per location ({prior.shape[0]}) and one column per class of the location prior ({prior.shape[1]}, "
                "in the order of config.location_prior_class_names)"
            )
        if not bool(torch.isfinite(probabilities).all()) or bool((probabilities < 0).any()):
            raise ValueError("class_probabilities must be finite numbers >= 0 (a content classifier's probabilities)")
        combined = probabilities * prior
        return combined / combined.sum(-1, keepdim=True).clamp_min(1e-12)
