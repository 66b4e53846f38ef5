"""Tiny text encoders and data for fast tests: a 2-layer, 32-wide BERT with the real MiniLM tokenizer."""

from pathlib import Path

import torch

TINY_BERT = dict(
    model_type="bert", hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
    max_position_embeddings=128,
)
# train.py tests: no dropout, so that runs are deterministic given the seed, and the default 512 positions.
TRAINING_BERT = dict(max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
TINY_POSTS_PLACES, TINY_POSTS_POOL_PER_PLACE, TINY_POSTS_QUERY_PER_PLACE = 6, 6, 4

SWISS_PLACES = [
    {"name": "Zürich, Switzerland", "latitude": 47.36667, "longitude": 8.55},
    {"name": "Bern, Switzerland", "latitude": 46.94809, "longitude": 7.44744},
    {"name": "Basel, Switzerland", "latitude": 47.55839, "longitude": 7.57327},
    {"name": "Luzern, Switzerland", "latitude": 47.05048, "longitude": 8.30635},
]

# Galleries for pipeline / CLI tests: places of two continents, so that an open-world gallery differs.
ALPINE_PLACES = [
    {"name": "Zurich, Switzerland", "latitude": 47.37, "longitude": 8.54},
    {"name": "Bern, Switzerland", "latitude": 46.95, "longitude": 7.45},
    {"name": "Vienna, Austria", "latitude": 48.21, "longitude": 16.37},
    {"name": "Munich, Germany", "latitude": 48.14, "longitude": 11.58},
    {"name": "Graz, Austria", "latitude": 47.07, "longitude": 15.44},
]
MIDWEST_PLACES = [
    {"name": "Lincoln, NE", "latitude": 40.81, "longitude": -96.68},
    {"name": "Madison, WI", "latitude": 43.07, "longitude": -89.40},
    {"name": "Chicago, IL", "latitude": 41.88, "longitude": -87.63},
]

WORDS = {0: "grüezi chuchichäschtli zäme", 1: "merci vielmal bärn", 2: "baslerdütsch fasnacht drummle",
         3: "luzärn fasnacht guggemusig"}


def synthetic_swiss_task(query_suffix=""):
    """A DatasetDict task (pool: 6 posts per place, query: 3, places) over SWISS_PLACES, one phrase per place."""
    import datasets

    from datasets_scripts.common import PLACES_FEATURES, post_features

    def posts(per_class, offset):
        rows = [(f"{WORDS[label]} {offset + i}{query_suffix if offset else ''}", label)
                for label in WORDS for i in range(per_class)]
        return datasets.Dataset.from_dict({
            "text": [text for text, _ in rows], "label": [label for _, label in rows],
            "latitude": [SWISS_PLACES[label]["latitude"] for _, label in rows],
            "longitude": [SWISS_PLACES[label]["longitude"] for _, label in rows],
        }, features=post_features([place["name"] for place in SWISS_PLACES]))

    places = datasets.Dataset.from_dict({
        "label": list(range(4)), "name": [p["name"] for p in SWISS_PLACES],
        "latitude": [p["latitude"] for p in SWISS_PLACES], "longitude": [p["longitude"] for p in SWISS_PLACES],
        "n_pool": [6] * 4}, features=PLACES_FEATURES)
    return datasets.DatasetDict({"pool": posts(6, 0), "query": posts(3, 100), "places": places})


def make_tiny_encoder(folder: Path, tokenizer_source: str, **config_overrides) -> Path:
    """Save a randomly initialised tiny BERT (fixed seed) and a real tokenizer into `folder`.

    config_overrides: BertConfig fields that differ from TINY_BERT (TRAINING_BERT for the train.py tests).
    """
    from transformers import AutoTokenizer, BertConfig, BertModel

    folder = Path(folder)
    if (folder / "config.json").exists():
        return folder
    fields = {**{k: v for k, v in TINY_BERT.items() if k != "model_type"}, **config_overrides}
    return save_tiny_model(folder, AutoTokenizer.from_pretrained(tokenizer_source), BertModel, BertConfig, **fields)


def save_tiny_model(folder, tokenizer, model_class, config_class, **config_fields) -> Path:
    """Save a randomly initialised (seed 0) `model_class(config_class(...))` of any family, its vocabulary sized to
    `tokenizer`, with that tokenizer, into `folder`."""
    import torch

    torch.manual_seed(0)
    model_class(config_class(vocab_size=tokenizer.vocab_size, **config_fields)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return Path(folder)


def make_tiny_posts(folder: Path) -> dict:
    """pool.csv / query.csv with the standard columns: TINY_POSTS_PLACES places of the vendored vardial-ch task,
    TINY_POSTS_POOL_PER_PLACE pool and TINY_POSTS_QUERY_PER_PLACE query posts each."""
    from datasets_scripts import VENDORED_DIR, load_task

    task = load_task("vardial-ch", data_dir=VENDORED_DIR / "vardial-ch")
    names = task["pool"].features["label"].names
    paths = {}
    for split, per_label in (("pool", TINY_POSTS_POOL_PER_PLACE), ("query", TINY_POSTS_QUERY_PER_PLACE)):
        frame = task[split].to_pandas()
        frame = frame[frame["label"] < TINY_POSTS_PLACES].groupby("label").head(per_label).copy()
        frame["label"] = [names[label] for label in frame["label"]]
        paths[split] = Path(folder) / f"{split}.csv"
        frame.to_csv(paths[split], index=False)
    return paths


# Posts of SWISS_PLACES (dialect spellings) and their places' indices, for the model tests.
POSTS = ["Grüezi mitenand, hüt gö mer id Badi", "Basler Fasnacht isch s Beschte", "Bärn isch schön", "Lozärn!"]
LABELS = torch.tensor([0, 2, 1, 3])


def build_tiny_model(tiny_encoder, **config_kwargs):
    """A ContrastGeoModel over SWISS_PLACES on the tiny encoder, small everywhere, the same weights every call."""
    from modeling_contrastgeo import ContrastGeoModel

    defaults = dict(projection_dim=16, location_hidden_size=32, num_hard_negatives=2, location_num_scales=4)
    torch.manual_seed(0)
    return ContrastGeoModel.from_text_encoder(tiny_encoder, places=SWISS_PLACES, **{**defaults, **config_kwargs})


def train_step_inputs(model, posts=POSTS, places=SWISS_PLACES):
    return {**model.tokenize_posts(posts), **model.tokenize_places(places)}
