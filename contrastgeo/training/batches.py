"""Batching: a seeded per-epoch shuffle, collators, and the candidate places of each contrastive step.

Every source of randomness in the data pipeline is a pure function of (seed, epoch) or (seed, step), never of the
global RNG: a run resumed from a checkpoint, and a run on N processes, see exactly the batches and candidate places
of a one-process uninterrupted run.
"""

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler


class EpochShuffleSampler(Sampler):
    """A permutation of `range(num_rows)` drawn from `numpy.random.default_rng([seed, epoch])`.

    Accelerate calls `set_epoch` on the sampler of a prepared DataLoader; the order of epoch e is the same on every
    process and in every session, so sharding and resuming reproduce one uninterrupted run.
    """

    def __init__(self, num_rows: int, seed: int):
        self.num_rows = num_rows
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        return iter(np.random.default_rng([self.seed, self.epoch]).permutation(self.num_rows).tolist())

    def __len__(self):
        return self.num_rows


class TensorRows(Dataset):
    """Rows of equally long tensors, returned as dicts (the default collate stacks them)."""

    def __init__(self, **columns: torch.Tensor):
        lengths = {name: len(column) for name, column in columns.items()}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"columns of different lengths: {lengths}")
        self.columns = columns
        self.length = next(iter(lengths.values()))

    def __len__(self):
        return self.length

    def __getitem__(self, index):
        return {name: column[index] for name, column in self.columns.items()}


class PostCollator:
    """A list of {"text", "label"} rows -> the model inputs of the posts plus `labels`. `tokenize_posts` is the
    model's own (`model.tokenize_posts`), so training sees exactly the inputs inference builds (tokens, and the
    character n-grams when the model has that channel)."""

    def __init__(self, tokenize_posts):
        self.tokenize_posts = tokenize_posts

    def __call__(self, rows):
        batch = dict(self.tokenize_posts([row["text"] for row in rows]))
        batch["labels"] = torch.tensor([row["label"] for row in rows], dtype=torch.long)
        return batch


def post_inputs(batch: dict) -> dict:
    """The model inputs of a collated batch of posts (everything but the labels)."""
    return {name: value for name, value in batch.items() if name != "labels"}


def train_dataloader(dataset, batch_size: int, seed: int, collate_fn=None) -> DataLoader:
    """A DataLoader shuffled by `EpochShuffleSampler`. Its own generator keeps DataLoader iterators from drawing on
    the global torch RNG (which dropout and negative sampling use, and which checkpoints restore)."""
    return DataLoader(dataset, batch_size=batch_size, sampler=EpochShuffleSampler(len(dataset), seed),
                      collate_fn=collate_fn, generator=torch.Generator().manual_seed(seed))


def index_dataloader(num_rows: int, batch_size: int) -> DataLoader:
    """Batches of row indices (for evaluation: each process scores its shard, `gather_for_metrics` joins them)."""
    return DataLoader(list(range(num_rows)), batch_size=batch_size, shuffle=False,
                      collate_fn=lambda indices: torch.tensor(indices, dtype=torch.long))


class CandidateSampler:
    """The candidate places of one contrastive step: every place of the *global* batch (all processes) plus random
    other places up to `max_candidates`, drawn by `default_rng([seed, step])`. The same on every process, so two
    processes contrast against the same places as one process with their joint batch.

    Re-encoding every place prompt every step costs one encoder pass per place; bounding the candidates bounds that
    cost at max_candidates prompts per step. With `max_candidates` 0, or at least the number of places, every place
    is a candidate (ContrastGeo's full contrast).
    """

    def __init__(self, num_places: int, max_candidates: int, seed: int):
        self.num_places = num_places
        self.max_candidates = max_candidates
        self.seed = seed

    def __call__(self, global_labels: torch.Tensor, step: int) -> torch.Tensor:
        """Sorted place ids (long tensor on `global_labels`' device)."""
        device = global_labels.device
        if not self.max_candidates or self.num_places <= self.max_candidates:
            return torch.arange(self.num_places, device=device)
        positives = torch.unique(global_labels).cpu().numpy()
        num_random = self.max_candidates - positives.size
        if num_random <= 0:
            return torch.as_tensor(positives, device=device)
        others = np.setdiff1d(np.arange(self.num_places), positives, assume_unique=True)
        drawn = np.random.default_rng([self.seed, step]).choice(others, size=min(num_random, others.size),
                                                                 replace=False)
        return torch.as_tensor(np.sort(np.concatenate([positives, drawn])), device=device)


class PlaceInputs:
    """Model inputs of every place, tokenized once; `select(candidates)` returns the rows of some places.

    Prompt rows are place-major (T templates per place); the selection is cut to its longest prompt so short
    candidate sets do not pay for the longest name in the gallery.
    """

    def __init__(self, model, places, device):
        self.num_templates = len(model.config.prompt_templates)
        self.inputs = {name: tensor.to(device) for name, tensor in model.tokenize_places(places).items()}
        self.right_padded = getattr(model.tokenizer, "padding_side", "right") == "right"

    def select(self, candidates: torch.Tensor) -> dict:
        selected = {}
        if "place_input_ids" in self.inputs:
            rows = (candidates[:, None] * self.num_templates
                    + torch.arange(self.num_templates, device=candidates.device)).reshape(-1)
            mask = self.inputs["place_attention_mask"][rows]
            length = int(mask.sum(1).max()) if self.right_padded else mask.shape[1]
            selected["place_input_ids"] = self.inputs["place_input_ids"][rows, :length]
            selected["place_attention_mask"] = mask[:, :length]
        if "place_latlon" in self.inputs:
            selected["place_latlon"] = self.inputs["place_latlon"][candidates]
        return selected
