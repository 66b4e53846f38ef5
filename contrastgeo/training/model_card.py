"""The model card (README.md) train.py writes next to the model it saves, and pushes with it to the Hub.

Like the cards of transformers' Trainer: YAML metadata the Hub indexes (library, tags, base model, and the
evaluation as `model-index`, so the results show on the model page), then what the model is, how to load it, the
data and hyper-parameters of the run, its evaluation and what it should not be used for. Every number in it is
read from the run (eval_results / train_results), never typed in.
"""

from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from datasets_scripts.hub import repo_id_problem

from .defaults import DEFAULT_TEXT_ENCODER_HUB_ID, DEFAULT_TEXT_ENCODER_PACKAGE
from .evaluation import WITHOUT_PLACE_PRIOR

# (eval_results key, model-index metric type, readable name, unit): the benchmark's metrics (DESIGN.md §4).
CARD_METRICS = (
    ("top1", "accuracy", "Top-1 accuracy", "%"),
    ("top5", "top_5_accuracy", "Top-5 accuracy", "%"),
    ("macro_acc", "balanced_accuracy", "Macro (class-balanced) accuracy", "%"),
    ("acc@161km", "accuracy_at_161km", "Accuracy within 161 km", "%"),
    ("median_km", "median_error_km", "Median error", "km"),
    ("mean_km", "mean_error_km", "Mean error", "km"),
)
# The run's settings a reader needs to reproduce or judge it; the full set is in training_config.json.
CARD_HYPERPARAMETERS = (
    "objective", "shots", "seed", "lora", "learning_rate", "head_learning_rate", "batch_size", "num_train_epochs",
    "min_train_steps", "max_train_steps", "calibration", "char_ngram_init",
)
CARD_MODEL_FIELDS = ("location_mode", "tlm_fusion", "num_hard_negatives", "prompt_templates", "char_ngram_buckets",
                     "place_prior", "place_prior_weight", "probability_temperature")
PLACES_LISTED = 30
PRIVACY_NOTE = """\
- Locating the authors of posts can expose people. Use it on aggregates (dialect maps, crisis reports), not to
  locate individuals without their consent."""
GEOLOCATION_LIMITATIONS = """\
- A few-shot model has seen a handful of posts per place; its scores vary with which posts those were (the
  ContrastGeo benchmark reports the spread over draws).
- With `place_prior="population"` the scores lean toward populous places: right where posts follow population,
  wrong where they do not (one app's users, one event). `model.geolocate(posts, place_prior="none")` turns it off.
"""
CITATIONS = """```bibtex
@article{li2024contrastgeo,
  title   = {Leveraging Contrastive Learning for Few-shot Geolocation of Social Posts},
  author  = {Li, Menglin and Lim, Kwan Hui},
  journal = {arXiv preprint arXiv:2403.00786},
  year    = {2024}
}
@inproceedings{mai2023csp,
  title     = {CSP: Self-Supervised Contrastive Spatial Pre-Training for Geospatial-Visual Representations},
  author    = {Mai, Gengchen and Lao, Ni and He, Yutong and Song, Jiaming and Ermon, Stefano},
  booktitle = {International Conference on Machine Learning (ICML)},
  year      = {2023}
}
```"""


def base_model_id(model_name_or_path):
    """The Hub id of the text encoder (train.py's `model_name_or_path`; None: the default encoder), or None when it
    is a local folder that is not the default package's."""
    if not model_name_or_path:
        return DEFAULT_TEXT_ENCODER_HUB_ID
    path = Path(model_name_or_path)
    if DEFAULT_TEXT_ENCODER_PACKAGE in path.parts:
        return DEFAULT_TEXT_ENCODER_HUB_ID
    if path.exists() or repo_id_problem(str(model_name_or_path)):
        return None
    return str(model_name_or_path)


def _data_name(data_description):
    if data_description.get("task"):
        return data_description["task"], data_description.get("eval_split") or "query"
    return Path(data_description.get("eval_file") or "eval").name, "eval"


def _format(value, unit):
    if value is None:
        return "—"
    return f"{100 * value:.1f}" if unit == "%" else f"{value:,.1f}"


def _eval_results(results, data_description):
    dataset_type, split = _data_name(data_description)
    return [
        EvalResult(task_type="text-classification", task_name="Geolocation of posts", dataset_type=dataset_type,
                   dataset_name=dataset_type, dataset_split=split, metric_type=metric_type, metric_name=name,
                   metric_value=round(100 * results[key], 2) if unit == "%" else round(results[key], 1))
        for key, metric_type, name, unit in CARD_METRICS if results.get(key) is not None
    ]


def _evaluation_section(results, data_description):
    if not results:
        return "No evaluation data was given to this run (train.py `--eval-file`, or a task with an evaluation split)."
    dataset, split = _data_name(data_description)
    scorings = [("as saved", results)]
    without = {key[len(WITHOUT_PLACE_PRIOR) + 1:]: value for key, value in results.items()
               if key.startswith(f"{WITHOUT_PLACE_PRIOR}/")}
    if without:
        scorings.append(("without the place prior", without))
    header = "| metric | " + " | ".join(name for name, _ in scorings) + " |"
    rows = [header, "|---|" + "---:|" * len(scorings)]
    for key, _, name, unit in CARD_METRICS:
        if key in results:
            rows.append(f"| {name} ({unit}) | " + " | ".join(_format(values.get(key), unit) for _, values in scorings)
                        + " |")
    count = results.get("num_examples", data_description.get("num_eval_posts"))
    return (f"On `{dataset}` (split `{split}`, {count} posts), computed by train.py at the end of training:\n\n"
            + "\n".join(rows))


def _data_section(data_description, places):
    if data_description.get("task"):
        source = f"the built-in task `{data_description['task']}` (split `{data_description.get('train_split')}`)"
    else:
        source = f"the file `{Path(str(data_description.get('train_file'))).name}`"
    shots = data_description.get("shots")
    drawn = (f"{shots} posts per place drawn with seed {data_description.get('seed')} "
             f"({data_description.get('num_train_posts')} of {data_description.get('num_pool_posts')} posts)"
             if shots else f"all {data_description.get('num_train_posts')} posts")
    names = [place["name"] for place in places]
    shown = names if len(names) <= PLACES_LISTED + 10 else names[:PLACES_LISTED]
    listed = "; ".join(shown) + (f"; … ({len(names) - len(shown)} more)" if len(shown) < len(names) else "")
    return (f"Trained on {drawn} of {source}. The label set holds {len(names)} places (names, coordinates and "
            f"populations are saved in `config.json`): {listed}.")


def _settings_table(config, model_config):
    rows = ["| setting | value |", "|---|---|"]
    rows += [f"| {key} | `{config[key]}` |" for key in CARD_HYPERPARAMETERS if key in config]
    rows += [f"| {key} | `{model_config.get(key)}` |" for key in CARD_MODEL_FIELDS if key in model_config]
    return "\n".join(rows)


_GEOLOCATE_EXAMPLE = """model.geolocate(["Off to the lake with the kids, the weather is perfect"], top_k=3)
# -> one list per post, best first: [{"name": ..., "latitude": ..., "longitude": ..., "score": ...}, ...]
model.geolocate(posts, places="geonames")  # GeoNames cities as candidates (or a list of {name, latitude, longitude})"""
_USE_EXAMPLES = {
    "csp": """import torch
location_embeds = model.get_location_features(place_latlon=torch.tensor([[47.37, 8.54]]))  # (N, 2) latitude, longitude
# or start a ContrastGeo model's coordinate encoder from it: train.py --init-location-encoder <this model>""",
    "location-prior": """import torch
logits = model.location_prior_logits(torch.tensor([[47.37, 8.54]]))  # (N, 2) latitude, longitude -> class scores
# multiply a content classifier's probabilities by softmax(logits) (CSP's location prior)""",
}
_KINDS = {
    "contrastgeo": "a ContrastGeo model (TLC + TLM) with the `{location_mode}` location encoder",
    "classifier": "the supervised classifier baseline (a linear head over places)",
    "csp": "a CSP coordinate location encoder (`{location_encoder_kind}`) pre-trained against frozen text embeddings",
    "location-prior": "a CSP location prior over {location_prior_num_classes} classes",
}


def _generic_sections(data_description, results):
    """Data and evaluation of the location objectives, whose descriptions and metrics are their own."""
    data = ", ".join(f"{key} `{value}`" for key, value in data_description.items() if value is not None)
    if not results:
        return f"Trained on: {data}.", "No evaluation data was given to this run."
    rows = ["| metric | value |", "|---|---:|"] + [f"| {key} | {value:.4g} |" for key, value in results.items()
                                                   if isinstance(value, (int, float))]
    return f"Trained on: {data}.", "Computed by train.py at the end of training:\n\n" + "\n".join(rows)


def build_model_card(config, data_description, results, model_config, train_results=None, repo_id=None):
    """The model card (a `huggingface_hub.ModelCard`) of a train.py run.

    Args:
        config: the run's hyper-parameters (`training_function`'s config).
        data_description: the run's data description (task or files, shots, seed, counts).
        results: eval_results of the saved model ({} without evaluation data).
        model_config: the saved model's `config.to_dict()` (places, location mode, prior, temperature).
        train_results: train_results.json's content (steps, runtime), optional.
        repo_id: the Hub repository the card is pushed to; the loading example uses it (else the local folder).
    """
    objective = config["objective"]
    geolocation = objective in ("contrastgeo", "classifier")
    places = model_config.get("places") or []
    model_name = repo_id.split("/")[-1] if repo_id else "ContrastGeo model"
    base_model = base_model_id(config.get("model_name_or_path"))
    card_data = ModelCardData(
        library_name="transformers", base_model=base_model, model_name=model_name,
        tags=["contrastgeo", "geolocation", "few-shot", "social-media", objective, "custom_code"],
        metrics=["accuracy"] if geolocation else None,
        eval_results=(_eval_results(results, data_description) or None) if geolocation else None,
    )
    kind = _KINDS[objective].format(**model_config)
    encoder = base_model or config.get("model_name_or_path")
    steps = (train_results or {}).get("train_steps")
    trained_for = f" for {steps} optimizer steps" if steps else ""
    if geolocation:
        summary = ("Tells where a social-media post was written, from its text: it ranks the places of its label set "
                   "(or any gallery of places you give it) for each post.")
        data_section, evaluation = _data_section(data_description, places), _evaluation_section(results,
                                                                                                 data_description)
    else:
        summary = "A location encoder of the ContrastGeo package (CSP, Mai et al. 2023)."
        data_section, evaluation = _generic_sections(data_description, results)
    body = f"""
# {model_name}

{summary} It is {kind}, on the text encoder `{encoder}`, trained by the ContrastGeo package's
`train.py`{trained_for}.

## Use

```python
from transformers import AutoModel

model = AutoModel.from_pretrained("{repo_id or 'path/to/this/folder'}", trust_remote_code=True)
{_USE_EXAMPLES.get(objective, _GEOLOCATE_EXAMPLE)}
```

## Training data

{data_section}

## Settings

{_settings_table(config, model_config)}

The run's full configuration is in `training_config.json`, its training log in `train_results.json`.

## Evaluation

{evaluation}

## Limitations and use

{GEOLOCATION_LIMITATIONS if geolocation else ""}{PRIVACY_NOTE}

## Citation

{CITATIONS}
"""
    return ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")


def write_model_card(output_dir, *args, **kwargs):
    """`build_model_card(...)` saved as `output_dir/README.md`; returns its path."""
    path = Path(output_dir) / "README.md"
    build_model_card(*args, **kwargs).save(path)
    return path
