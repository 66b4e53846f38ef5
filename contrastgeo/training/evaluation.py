"""Evaluation of each objective. Every process scores its shard of the evaluation rows (an index DataLoader prepared
by Accelerate) and `gather_for_metrics` joins the shards, dropping the rows repeated to even them out.

- geolocation (contrastgeo, classifier): the model's calibrated scores over the label set (`predict_scores`: logits
  over the temperature, plus the log place prior when the model has one); the predicted place is the argmax, its
  coordinates are scored against the post's own coordinates with `contrastgeo.metrics.compute_geolocation_metrics`
  (top1, top5, macro_acc, acc@{1,25,161,200,750,2500}km, mean_km, median_km), and the expected calibration error of
  the top-1 probability with the model's temperature (`ece`) and with temperature 1 (`ece_uncalibrated`). A model
  with a place prior also gets the ranking metrics without it, as `without_place_prior/<metric>`.
- csp: the CSP loss terms on held-out rows (means over evaluation batches) and location-to-content retrieval accuracy
  over the whole evaluation set (`retrieval_top1`).
- location-prior: top-1 / top-5 accuracy of ranking the classes by the prior alone.
"""

import contextlib

import numpy as np
import torch

from contrastgeo.metrics import compute_geolocation_metrics, expected_calibration_error

WITHOUT_PLACE_PRIOR = "without_place_prior"
# CSP retrieval compares every evaluation location with every evaluation content: in blocks of rows of at most this
# many similarities (64 MiB of float32), so that a large evaluation set needs no (N, N) matrix.
MAX_RETRIEVAL_SIMILARITIES = 2**24


@contextlib.contextmanager
def evaluation_mode(accelerator, model):
    """`model` in eval mode without gradients, put back in its mode afterwards. The RNG is forked: evaluation must not
    move the training RNG, so that a run with `--eval-steps` trains exactly like one without."""
    devices = [accelerator.device] if accelerator.device.type == "cuda" else []
    was_training = model.training
    model.eval()
    try:
        with torch.random.fork_rng(devices=devices), torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _gathered_rows(accelerator, eval_dataloader, score_batch):
    """Run `score_batch(indices) -> tensor (n, ...)` over each process's shard; gather (indices, scores)."""
    all_indices, all_scores = [], []
    for indices in eval_dataloader:
        scores = score_batch(indices)
        indices, scores = accelerator.gather_for_metrics((indices, scores.to(indices.device)))
        all_indices.append(indices.cpu())
        all_scores.append(scores.cpu())
    return torch.cat(all_indices).numpy(), torch.cat(all_scores)


def evaluate_geolocation(accelerator, model, eval_dataloader, evaluation: dict, places, batch_size: int) -> dict:
    """Geolocation metrics of the posts in `evaluation` (text, label, latitude, longitude) over `places`."""
    unwrapped = accelerator.unwrap_model(model)
    texts = evaluation["text"]
    top_k = min(5, len(places))

    def score_batch(indices):
        # A fixed query set may hold a blank post (umass-global's has one): it is scored, not dropped.
        logits, _ = unwrapped.predict_logits([texts[i] for i in indices.tolist()], batch_size=batch_size,
                                             allow_blank=True)
        return logits

    with evaluation_mode(accelerator, unwrapped):
        indices, logits = _gathered_rows(accelerator, eval_dataloader, score_batch)
    references = evaluation["label"][indices]
    place_latlon = np.array([[place["latitude"], place["longitude"]] for place in places])

    temperature = unwrapped.config.probability_temperature

    def scored(log_prior):
        ranked = (logits / temperature + log_prior).topk(top_k, dim=-1).indices.numpy()
        predicted = ranked[:, 0]
        metrics = compute_geolocation_metrics(
            place_latlon[predicted, 0], place_latlon[predicted, 1],
            evaluation["latitude"][indices], evaluation["longitude"][indices],
            predictions=predicted, references=references, top_k_predictions=ranked,
        )
        for key, scale in (("ece", temperature), ("ece_uncalibrated", 1.0)):
            # With a prior, the temperature moves the ranking too: each scale is judged on its own predictions.
            confidences, scale_predicted = (logits / scale + log_prior).softmax(-1).max(-1)
            metrics[key] = expected_calibration_error(confidences.numpy(), scale_predicted.numpy() == references)
        return metrics

    log_prior = unwrapped.place_log_prior()  # over the saved label set, whose populations were looked up once
    metrics = scored(0.0 if log_prior is None else log_prior)
    metrics["probability_temperature"] = float(temperature)
    if log_prior is not None:
        metrics.update({f"{WITHOUT_PLACE_PRIOR}/{key}": value for key, value in scored(0.0).items()})
    return metrics


def retrieval_top1(location_embeds: torch.Tensor, content_embeds: torch.Tensor,
                   max_similarities: int = MAX_RETRIEVAL_SIMILARITIES) -> float:
    """The share of rows i whose own content `content_embeds[i]` is the most similar (cosine) to their location
    `location_embeds[i]` among the contents of all rows. A tie with another row's content counts as found: rows with
    the same content (two destinations with one byline) cannot be told apart by any location encoder. The (N, N)
    similarities are computed in blocks of rows of at most `max_similarities` entries."""
    num_rows = location_embeds.shape[0]
    if num_rows == 0 or content_embeds.shape[0] != num_rows:
        raise ValueError(f"retrieval_top1 needs one content per location and at least one row, got "
                         f"{num_rows} locations and {content_embeds.shape[0]} contents")
    locations = torch.nn.functional.normalize(location_embeds.float(), dim=-1)
    contents = torch.nn.functional.normalize(content_embeds.float(), dim=-1)
    block_rows = max(1, max_similarities // num_rows)
    found = 0
    for start in range(0, num_rows, block_rows):
        similarities = locations[start:start + block_rows] @ contents.T
        rows = torch.arange(similarities.shape[0], device=similarities.device)
        own = similarities[rows, start + rows]
        found += int((own >= similarities.max(dim=-1).values).sum())
    return found / num_rows


def evaluate_csp(accelerator, model, eval_dataloader, latlon: torch.Tensor, content_embeds: torch.Tensor) -> dict:
    """Mean CSP terms B (in-batch) and L (random locations) over evaluation batches, and `retrieval_top1`:
    location-to-content retrieval over the whole evaluation set, each row's location against the contents of all rows
    (gathered from every process), so it does not depend on the evaluation batch size or the number of processes.
    Term D is left out: without dropout (eval mode) its two views are the same vector."""
    unwrapped = accelerator.unwrap_model(model)
    sums, num_batches = {}, 0

    def score_batch(indices):
        nonlocal num_batches
        batch_latlon = latlon[indices.cpu()].to(accelerator.device)
        output = unwrapped(objective="csp", latlon=batch_latlon,
                           content_embeds=content_embeds[indices.cpu()].to(accelerator.device))
        for term in ("loss_in_batch", "loss_random_location"):
            if getattr(output, term) is not None:
                sums[term] = sums.get(term, 0.0) + float(accelerator.reduce(getattr(output, term).detach(), "mean"))
        num_batches += 1
        return torch.cat([output.location_embeds.float(), output.content_embeds.float()], dim=-1)

    with evaluation_mode(accelerator, unwrapped):
        _, embeds = _gathered_rows(accelerator, eval_dataloader, score_batch)
    location_embeds, eval_content_embeds = embeds.to(accelerator.device).chunk(2, dim=-1)
    results = {term: total / num_batches for term, total in sums.items()}
    results.update(retrieval_top1=retrieval_top1(location_embeds, eval_content_embeds),
                   num_examples=int(embeds.shape[0]))
    return results


def evaluate_location_prior(accelerator, model, eval_dataloader, latlon: torch.Tensor, labels: np.ndarray) -> dict:
    """Top-1 / top-5 accuracy of the classes ranked by the location prior alone."""
    unwrapped = accelerator.unwrap_model(model)
    num_classes = unwrapped.config.location_prior_num_classes
    top_k = min(5, num_classes)

    def score_batch(indices):
        logits = unwrapped.location_prior_logits(latlon[indices.cpu()].to(accelerator.device))
        return logits.topk(top_k, dim=-1).indices

    with evaluation_mode(accelerator, unwrapped):
        indices, ranked = _gathered_rows(accelerator, eval_dataloader, score_batch)
    ranked = ranked.numpy()
    references = labels[indices]
    return {
        "top1": float((ranked[:, 0] == references).mean()),
        "top5": float((ranked == references[:, None]).any(axis=1).mean()),
        "num_examples": int(references.shape[0]),
    }
