"""One training step of each objective: a batch in, (loss, detached values to log) out.

contrastgeo: TLC + TLM over the step's candidate places (`batches.CandidateSampler`): the places of the global
batch (gathered from every process) plus random others up to `--max-candidates`, identical on every process. Each
process contrasts its own posts against those candidates; the mean over processes of their losses is the loss of one
process holding the joint batch, and DDP's gradient averaging makes the updates equal too. TLM's hard negatives are
drawn by the model with the global torch RNG (`hard_negative_strategy="multinomial"`), which differs between
processes; `"topk"` (or `--tlm-weight 0`) makes N processes match one exactly.
"""

import logging
from collections import deque

import torch

from modeling_contrastgeo.losses import tlm_constant_predictor_entropy

from .batches import CandidateSampler, PlaceInputs, post_inputs

logger = logging.getLogger(__name__)


class ContrastGeoStep:
    """TLC + TLM over the candidate places of the step."""

    def __init__(self, accelerator, model, places, max_candidates: int, seed: int):
        self.accelerator = accelerator
        self.candidate_sampler = CandidateSampler(len(places), max_candidates, seed)
        self.place_inputs = PlaceInputs(model, places, accelerator.device)

    def __call__(self, model, batch, step: int):
        labels = batch["labels"]
        padded = self.accelerator.pad_across_processes(labels, pad_index=-1)
        global_labels = self.accelerator.gather(padded)
        candidates = self.candidate_sampler(global_labels[global_labels >= 0], step)
        output = model(
            **post_inputs(batch), labels=torch.searchsorted(candidates, labels), objective="contrastgeo",
            **self.place_inputs.select(candidates),
        )
        logs = {"loss": output.loss, "loss_tlc": output.loss_tlc,
                "num_candidates": torch.tensor(float(candidates.numel()), device=labels.device)}
        if output.loss_tlm is not None:
            num_negatives = int(output.negative_valid.sum())
            logs["loss_tlm"] = output.loss_tlm
            # What TLM would score by predicting the match rate everywhere: the bug signal's reference.
            logs["tlm_constant_entropy"] = torch.tensor(
                tlm_constant_predictor_entropy(labels.shape[0], num_negatives), device=labels.device
            )
        logs["logit_scale"] = self.accelerator.unwrap_model(model).scaled_logit_scale()
        return output.loss, {name: value.detach().float() for name, value in logs.items()}


class ClassifierStep:
    """Cross-entropy of the linear head over every place (location_mode='classifier')."""

    def __call__(self, model, batch, step: int):
        output = model(**post_inputs(batch), labels=batch["labels"], objective="contrastgeo")
        return output.loss, {"loss": output.loss.detach().float()}


class CSPStep:
    """CSP's in-batch (B), random-location (L) and dropout-view (D) terms against frozen content embeddings."""

    def __call__(self, model, batch, step: int):
        output = model(objective="csp", latlon=batch["latlon"], content_embeds=batch["content_embeds"])
        logs = {"loss": output.loss}
        for term in ("loss_in_batch", "loss_random_location", "loss_dropout_view"):
            if getattr(output, term) is not None:
                logs[term] = getattr(output, term)
        return output.loss, {name: value.detach().float() for name, value in logs.items()}


class LocationPriorStep:
    """Presence/absence loss of the location prior's class head."""

    def __call__(self, model, batch, step: int):
        output = model(objective="location-prior", latlon=batch["latlon"], labels=batch["labels"])
        return output.loss, {"loss": output.loss.detach().float()}


class TLMCollapseMonitor:
    """Warns (once) when the TLM loss sits within `tolerance` of the constant predictor's entropy after warm-up:
    the matching head has then learned nothing about whether a post and a place match, which is a bug signal
    (e.g. a fusion whose output ignores the post)."""

    def __init__(self, warmup_steps: int, window: int = 5, tolerance: float = 0.02):
        self.warmup_steps = warmup_steps
        self.tolerance = tolerance
        self.history = deque(maxlen=window)
        self.warned = False

    def update(self, step: int, loss_tlm: float, constant_entropy: float) -> bool:
        """Record one logged value; returns True when it warns."""
        if step <= self.warmup_steps:
            return False
        self.history.append((loss_tlm, constant_entropy))
        if self.warned or len(self.history) < self.history.maxlen:
            return False
        mean_loss = sum(loss for loss, _ in self.history) / len(self.history)
        mean_entropy = sum(entropy for _, entropy in self.history) / len(self.history)
        if abs(mean_loss - mean_entropy) <= self.tolerance * mean_entropy:
            logger.warning(
                "step %d: the TLM loss (%.4f over the last %d logs) stays within %.0f%% of the constant predictor's "
                "entropy (%.4f): the matching head is not learning to tell matching places from hard negatives. "
                "Check the fusion (tlm_fusion / fusion_encoder) and the learning rates.",
                step, mean_loss, len(self.history), 100 * self.tolerance, mean_entropy,
            )
            self.warned = True
            return True
        return False

    def state_dict(self) -> dict:
        """JSON-ready: a resumed run goes on with the window and the warning of the interrupted one."""
        return {"history": [list(pair) for pair in self.history], "warned": self.warned}

    def load_state_dict(self, state: dict) -> None:
        self.history = deque((tuple(pair) for pair in state["history"]), maxlen=self.history.maxlen)
        self.warned = bool(state["warned"])
