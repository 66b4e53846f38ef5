"""Two CPU processes (gloo) with gathered embeddings must reproduce one process on the whole batch.

World-size scaling checked here (see modeling_contrastgeo/losses.py): each process's loss is the mean over its own rows
against the gathered rows, and the all-gather's backward sums what every process sends to a shard. So, with equal
shards, mean(per-process losses) == one-process loss, and the gradient of a process's local embeddings is
world_size x the matching slice of the one-process gradient; DDP averages parameter gradients over the world_size
processes, which divides the factor back out. Inputs every process holds a full copy of (the random locations of
CSP's L term) get per-process gradients whose average is the one-process gradient. With uneven shards, weighting
each process's loss by its share of the rows (n_rank / N) gives the one-process loss and gradient without a factor.
"""

import datetime
import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from modeling_contrastgeo.csp_losses import csp_loss
from modeling_contrastgeo.losses import gather_with_grad, tlc_loss

WORLD_SIZE = 2
NUM_POSTS, NUM_PLACES, NUM_RANDOM, DIM = 6, 8, 5, 4
LOGIT_SCALE = 3.0
CSP_KWARGS = dict(
    in_batch_weight=1.0,
    random_location_weight=0.5,
    dropout_view_weight=0.25,
    in_batch_temperature=0.3,
    random_location_temperature=0.2,
    dropout_view_temperature=0.1,
)
UNEVEN_ROWS = {0: slice(0, 4), 1: slice(4, 6)}


def _inputs():
    generator = torch.Generator().manual_seed(0)
    return {
        "post_embeds": torch.randn(NUM_POSTS, DIM, generator=generator, dtype=torch.float64),
        "place_embeds": torch.randn(NUM_PLACES, DIM, generator=generator, dtype=torch.float64),
        "labels": torch.randint(0, NUM_PLACES, (NUM_POSTS,), generator=generator),
        "location_embeds": torch.randn(NUM_POSTS, DIM, generator=generator, dtype=torch.float64),
        "content_embeds": torch.randn(NUM_POSTS, DIM, generator=generator, dtype=torch.float64),
        "random_location_embeds": torch.randn(NUM_RANDOM, DIM, generator=generator, dtype=torch.float64),
        "second_view": torch.randn(NUM_POSTS, DIM, generator=generator, dtype=torch.float64),
    }


def _leaf(tensor):
    return tensor.clone().requires_grad_(True)


def _tlc(post_embeds, place_embeds, labels):
    """TLC where every process encodes its own share of the candidate places and the shares are gathered."""
    post_embeds, place_embeds = _leaf(post_embeds), _leaf(place_embeds)
    loss, _ = tlc_loss(post_embeds, gather_with_grad(place_embeds), labels, torch.tensor(LOGIT_SCALE))
    loss.backward()
    return {"loss": loss.detach(), "post_grad": post_embeds.grad, "place_grad": place_embeds.grad}


def _csp(location_embeds, content_embeds, random_location_embeds, second_view, loss_scale=1.0):
    location_embeds, random_location_embeds = _leaf(location_embeds), _leaf(random_location_embeds)
    second_view = _leaf(second_view)
    losses = csp_loss(location_embeds, content_embeds, random_location_embeds, second_view, **CSP_KWARGS)
    (loss_scale * losses["loss"]).backward()
    result = {name: value.detach() for name, value in losses.items()}
    result.update(
        location_grad=location_embeds.grad, random_grad=random_location_embeds.grad, second_view_grad=second_view.grad
    )
    return result


def _worker(rank, init_file, output_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD_SIZE,
        timeout=datetime.timedelta(seconds=60),
    )
    try:
        data = _inputs()
        posts = slice(rank * NUM_POSTS // WORLD_SIZE, (rank + 1) * NUM_POSTS // WORLD_SIZE)
        places = slice(rank * NUM_PLACES // WORLD_SIZE, (rank + 1) * NUM_PLACES // WORLD_SIZE)
        result = {
            "tlc": _tlc(data["post_embeds"][posts], data["place_embeds"][places], data["labels"][posts]),
            "csp": _csp(
                data["location_embeds"][posts], data["content_embeds"][posts], data["random_location_embeds"],
                data["second_view"][posts],
            ),
        }
        rows = UNEVEN_ROWS[rank]
        result["uneven_gathered"] = gather_with_grad(data["location_embeds"][rows])
        result["csp_uneven"] = _csp(
            data["location_embeds"][rows], data["content_embeds"][rows], data["random_location_embeds"],
            data["second_view"][rows], loss_scale=(rows.stop - rows.start) / NUM_POSTS,
        )
        torch.save(result, os.path.join(output_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def rank_results(tmp_path_factory):
    directory = tmp_path_factory.mktemp("distributed_gather")
    mp.spawn(_worker, args=(str(directory / "init"), str(directory)), nprocs=WORLD_SIZE, join=True)
    return [torch.load(directory / f"rank{rank}.pt", weights_only=True) for rank in range(WORLD_SIZE)]


def _close(actual, expected):
    torch.testing.assert_close(actual, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.slow
def test_tlc_with_gathered_candidates_matches_one_process(rank_results):
    data = _inputs()
    full = _tlc(data["post_embeds"], data["place_embeds"], data["labels"])
    _close(torch.stack([result["tlc"]["loss"] for result in rank_results]).mean(), full["loss"])
    _close(torch.cat([result["tlc"]["post_grad"] for result in rank_results]), WORLD_SIZE * full["post_grad"])
    _close(torch.cat([result["tlc"]["place_grad"] for result in rank_results]), WORLD_SIZE * full["place_grad"])


@pytest.mark.slow
def test_csp_with_gathered_batch_matches_one_process(rank_results):
    data = _inputs()
    full = _csp(data["location_embeds"], data["content_embeds"], data["random_location_embeds"], data["second_view"])
    for name in ("loss", "loss_in_batch", "loss_random_location", "loss_dropout_view"):
        _close(torch.stack([result["csp"][name] for result in rank_results]).mean(), full[name])
    for name in ("location_grad", "second_view_grad"):
        _close(torch.cat([result["csp"][name] for result in rank_results]), WORLD_SIZE * full[name])
    # Every process holds all the random locations: DDP's average of their gradients is the one-process gradient.
    _close(torch.stack([result["csp"]["random_grad"] for result in rank_results]).mean(0), full["random_grad"])
    # The processes really saw different rows; otherwise the comparison above would be trivially true.
    assert not torch.allclose(rank_results[0]["csp"]["loss_in_batch"], rank_results[1]["csp"]["loss_in_batch"])


@pytest.mark.slow
def test_gather_with_uneven_shards_keeps_every_row_and_the_gradient(rank_results):
    data = _inputs()
    for result in rank_results:
        _close(result["uneven_gathered"], data["location_embeds"])
    full = _csp(data["location_embeds"], data["content_embeds"], data["random_location_embeds"], data["second_view"])
    shares = [(rows.stop - rows.start) / NUM_POSTS for rows in UNEVEN_ROWS.values()]
    weighted_loss = sum(share * result["csp_uneven"]["loss"] for share, result in zip(shares, rank_results))
    _close(weighted_loss, full["loss"])
    for name in ("location_grad", "second_view_grad"):
        _close(torch.cat([result["csp_uneven"][name] for result in rank_results]), full[name])
