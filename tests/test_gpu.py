"""Training and inference on a CUDA device (skipped without one).

These are the paths a CPU run never takes: tensors made after `accelerator.prepare` moved the model (the n-gram
channel's start after training, its cross-validated weight), bf16 autocast, a model used for inference on the GPU.
"""

import math

import pandas as pd
import pytest
import torch

from tests.train_runs import (METRIC_KEYS, geolocation_argv, load_saved, one_torch_thread,  # noqa: F401 (fixtures)
                              reevaluated_top1, tiny, train)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CHANNEL = ["--model-config", "char_ngram_buckets=512"]


@pytest.mark.parametrize("precision", ["no", "bf16"])
def test_contrastgeo_default_trains_starts_its_channel_and_evaluates_on_the_gpu(tiny, tmp_path, precision):
    results = train(geolocation_argv(tiny, tmp_path, *CHANNEL, "--mixed-precision", precision))
    assert METRIC_KEYS <= set(results) and all(math.isfinite(results[key]) for key in METRIC_KEYS)
    model = load_saved(tmp_path)
    assert model.char_ngram_encoder.bag.weight.abs().sum() > 0  # the channel started after training
    if precision == "no":  # the saved model, scored again on the CPU, agrees with the GPU evaluation to one post
        assert abs(reevaluated_top1(model, tiny["query"]) - results["top1"]) <= 1 / 24 + 1e-9


def test_a_saved_model_predicts_on_the_gpu_as_on_the_cpu(tiny, tmp_path):
    train(geolocation_argv(tiny, tmp_path, *CHANNEL))
    model = load_saved(tmp_path).eval()
    texts = pd.read_csv(tiny["query"])["text"].tolist()
    cpu_probabilities, _ = model.predict_scores(texts)
    gpu_probabilities, _ = model.to("cuda").predict_scores(texts)
    torch.testing.assert_close(gpu_probabilities.cpu(), cpu_probabilities, atol=1e-4, rtol=1e-3)
    for rerank in (False, True):
        [ranked] = model.geolocate(texts[:1], top_k=3, rerank=rerank)
        assert len(ranked) == 3 and ranked[0]["score"] >= ranked[-1]["score"]


def test_classifier_trains_in_bf16_on_the_gpu(tiny, tmp_path):
    results = train(geolocation_argv(tiny, tmp_path, "--objective", "classifier", "--mixed-precision", "bf16"))
    assert METRIC_KEYS <= set(results) and math.isfinite(results["mean_km"])
