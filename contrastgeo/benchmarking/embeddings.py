"""Frozen-encoder embeddings of a task, computed once and cached on disk as safetensors.

A cached file holds the L2-normalised embeddings of the task's pool and query posts (place prompts are few and are
encoded on the fly, per template set). Its name is keyed by the task name and a hash of everything the embeddings
depend on: the encoder's weights, the config fields that change its output, and the task's content. A rebuilt task
with different rows, or another encoder, therefore gets a new file instead of stale vectors.
"""

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

EMBEDDING_CACHE_ENV = "CONTRASTGEO_EMBEDDING_CACHE"
# Config fields that change what the encoder returns for a text (prompt templates are the caller's business).
_ENCODING_CONFIG_FIELDS = ("pooling", "projection_dim", "max_post_length", "max_prompt_length")
_ENCODING_MODULES = ("text_model", "text_projection", "location_text_model", "location_encoder", "location_gate")
_ENCODE_BLOCK = 1024


def default_embedding_cache_dir():
    """$CONTRASTGEO_EMBEDDING_CACHE, else ~/.cache/contrastgeo/embeddings."""
    if os.environ.get(EMBEDDING_CACHE_ENV):
        return Path(os.environ[EMBEDDING_CACHE_ENV])
    return Path.home() / ".cache" / "contrastgeo" / "embeddings"


def model_fingerprint(model):
    """sha256 of the weights `encode_posts`/`encode_places` use (text encoders, projection, location encoder) and of
    the config fields that change their output. Heads that play no part in encoding (TLM, classifier, logit scale)
    are left out: a freshly built model initialises them at random, and the hash must name the encoder."""
    digest = hashlib.sha256()
    for module_name in _ENCODING_MODULES:
        module = getattr(model, module_name, None)
        if module is None:
            continue
        for name, tensor in sorted(module.state_dict().items()):
            digest.update(f"{module_name}.{name}".encode())
            digest.update(str(tuple(tensor.shape)).encode() + str(tensor.dtype).encode())
            digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    encoding_config = {field: getattr(model.config, field, None) for field in _ENCODING_CONFIG_FIELDS}
    digest.update(json.dumps(encoding_config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def task_places(task):
    """The task's class table as a list of {"name", "latitude", "longitude"} in label order (label i = row i)."""
    places = task["places"]
    labels = list(places["label"])
    if labels != list(range(len(labels))):
        raise ValueError(f"the places table's labels must be 0..{len(labels) - 1} in order, got {labels[:10]}...")
    return [
        {"name": name, "latitude": float(latitude), "longitude": float(longitude)}
        for name, latitude, longitude in zip(places["name"], places["latitude"], places["longitude"])
    ]


def task_fingerprint(task):
    """sha256 of a task's content: pool and query rows (text, label, coordinates) and the class table."""
    digest = hashlib.sha256()
    for split in ("pool", "query"):
        columns = task[split].select_columns(["text", "label", "latitude", "longitude"]).to_dict()
        digest.update(json.dumps([split, columns], ensure_ascii=False).encode())
    digest.update(json.dumps(task_places(task), ensure_ascii=False).encode())
    return digest.hexdigest()


def encode_texts(model, texts, batch_size=64, description=None):
    """(N, D) float32 L2-normalised embeddings of `texts` via `model.encode_posts`, with a progress bar.

    Texts are sorted by length over the whole list (not per block), so that batches hold posts of similar
    length and padding stays small; the result is in input order. The model should be in eval mode.
    """
    texts = list(texts)
    # Blank posts are scored from the special tokens alone: a benchmark task may hold one (umass-global's query
    # does), and leaving a query post out would change the task.
    order = np.argsort([len(text) for text in texts], kind="stable")
    embeddings = None
    with tqdm(total=len(texts), desc=description or "encoding", unit="post", leave=False) as progress:
        for start in range(0, len(order), _ENCODE_BLOCK):
            rows = order[start:start + _ENCODE_BLOCK]
            block = model.encode_posts([texts[i] for i in rows], batch_size=batch_size, allow_blank=True)
            block = block.cpu().numpy()
            if embeddings is None:
                embeddings = np.zeros((len(texts), block.shape[1]), dtype=np.float32)
            embeddings[rows] = block
            progress.update(len(rows))
    return embeddings


def place_prompt_embeddings(model, places, prompt_templates):
    """(C, D) float32 L2-normalised prompt embeddings of `places` with the given templates (averaged over them).

    The templates of `model.config` are swapped for the call only; the gallery is a few hundred prompts at most, so
    it is encoded every time rather than cached.
    """
    saved = model.config.prompt_templates
    model.config.prompt_templates = list(prompt_templates)
    try:
        model.eval()
        return model.encode_places(places).cpu().numpy().astype(np.float32)
    finally:
        model.config.prompt_templates = saved


def cached_task_embeddings(model, task_name, task, cache_dir=None, batch_size=64, fingerprint=None):
    """Embeddings of a task's pool and query posts under a frozen `model`, from the cache when present.

    Args:
        model: a ContrastGeoModel (e.g. an untrained one around the text encoder, `projection_dim=None`).
        task_name: used in the file name only.
        task: DatasetDict with `pool` and `query` splits (column text).
        cache_dir: folder of the cache (default `default_embedding_cache_dir()`).
        batch_size: posts per forward pass.
        fingerprint: `model_fingerprint(model)` when already computed.

    Returns:
        dict of float32 numpy arrays: `pool` (N_pool, D) and `query` (N_query, D).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_embedding_cache_dir()
    model_hash = fingerprint or model_fingerprint(model)
    path = cache_dir / f"{task_name}-{embedding_cache_key(model_hash, task)}.safetensors"
    expected_rows = {"pool": task["pool"].num_rows, "query": task["query"].num_rows}
    if path.is_file():
        tensors = {name: tensor.numpy() for name, tensor in load_file(str(path)).items()}
        if set(tensors) == set(expected_rows) and all(len(tensors[n]) == rows for n, rows in expected_rows.items()):
            return tensors
    model.eval()  # no dropout: the embeddings are the frozen encoder's
    embeddings = {split: encode_texts(model, task[split]["text"], batch_size, f"{task_name} {split}")
                  for split in expected_rows}
    cache_dir.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    save_file({name: torch.from_numpy(np.ascontiguousarray(array)) for name, array in embeddings.items()},
              str(temporary), metadata={"task": task_name, "model_fingerprint": model_hash})
    temporary.replace(path)
    return embeddings


def embedding_cache_key(model_hash, task):
    """The part of a cache file's name that identifies the encoder and the task's content."""
    return hashlib.sha256(f"{model_hash}\n{task_fingerprint(task)}".encode()).hexdigest()[:20]
