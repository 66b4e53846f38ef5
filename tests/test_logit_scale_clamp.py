"""The learnable logit scale stays within its clamp during training, so its gradient never vanishes."""

import math
from types import SimpleNamespace

import pytest
import torch

from tests.tiny_models import build_tiny_model


def test_an_optimizer_step_past_the_maximum_scale_is_clamped_back_so_the_scale_can_still_fall(tiny_encoder):
    """Above log(max_logit_scale) the clamp in scaled_logit_scale passes no gradient, so a scale that crossed it
    could never come back down; the loop clamps the parameter after each step, as open_clip does."""
    from accelerate import Accelerator

    from contrastgeo.training.loops import optimization_step
    from tests.train_runs import reset_accelerate_state

    reset_accelerate_state()
    model = build_tiny_model(tiny_encoder, max_logit_scale=100.0, logit_scale_init_value=99.5)
    accelerator = Accelerator(cpu=True)
    optimizer = torch.optim.SGD([model.logit_scale], lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    direction = {"sign": -1.0}  # the loss first rewards a larger scale, then a smaller one
    run = SimpleNamespace(step=lambda model, batch, micro_batch: (
        direction["sign"] * accelerator.unwrap_model(model).scaled_logit_scale(), {"loss": 0.0}))

    optimization_step(accelerator, run, model, optimizer, scheduler, None, 0, [model.logit_scale], 0.0)
    assert model.logit_scale.item() == pytest.approx(math.log(100.0))  # one SGD step would have put it at ~104
    direction["sign"] = 1.0
    optimization_step(accelerator, run, model, optimizer, scheduler, None, 1, [model.logit_scale], 0.0)
    assert model.logit_scale.item() < math.log(100.0) - 1.0  # it can fall again
