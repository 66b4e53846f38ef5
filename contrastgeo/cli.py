"""The `contrastgeo` command line.

```bash
contrastgeo predict --model DIR --input posts.csv --output predictions.csv [--top-k 5] [--places geonames:CH]
cat posts.jsonl | contrastgeo predict --model DIR --input - --output - > predictions.jsonl
accelerate launch --num_processes 8 -m contrastgeo.cli predict --model DIR --input posts.parquet --output out.parquet
contrastgeo push-space --repo-id you/contrastgeo-demo --model you/swiss-k16   # the demo as a Hub Space
```

`predict` reads CSV / JSONL / Parquet (by extension or `--input-format`; stdin with `--input -`, JSONL unless
`--input-format csv`), geolocates the `text` column (`--text-column`) and writes every input row, in order, with its
input columns, `name_r`, `latitude_r`, `longitude_r`, `score_r` for r in 1..K, for JSONL also a `predictions`
list, and an `error` column saying why a row (empty or non-string text, a malformed JSONL line) has no
prediction. Output format by extension or `--output-format` (stdout with `--output -`: JSONL unless
`--output-format csv`). The layout is documented in `contrastgeo/predict.py`.

`--places`: the model's own label set by default; `geonames` (cities with >= 15,000 people worldwide, ~34k),
`geonames:CC` (one country, ISO code), or a CSV/JSONL/Parquet file with columns name (or label), latitude, longitude.

Under `accelerate launch` with several processes every process geolocates its share of the chunks and the main
process merges them in input order: the output is the same as with one process. Input and output must then be
files that every process reaches (a shared filesystem across machines). On a machine without GPUs, launch several
CPU processes with `accelerate launch --multi_gpu --num_processes N ...` (the processes then talk over gloo).
"""

import argparse
import os
import sys

from pathlib import Path

from .launch import accelerate_cpu_flag, launched_process_count
from .predict import DEFAULT_CHUNK_SIZE, predict_file
from .prediction_io import EXTENSIONS, FORMATS, STDIO, csv_read_errors


def load_places_table(path) -> list[dict]:
    """A gallery from a CSV / JSONL / Parquet file with columns name (or label), latitude, longitude (and optionally
    population, for the place prior)."""
    import pandas as pd

    from modeling_contrastgeo.places import normalize_places

    path = Path(path)
    file_format = EXTENSIONS.get(path.suffix.lower())
    if file_format is None:
        raise ValueError(f"--places {path}: a places file ends in {', '.join(EXTENSIONS)}")
    if file_format == "csv":
        with csv_read_errors(path):
            table = pd.read_csv(path, dtype={"name": str, "label": str}, keep_default_na=False, encoding="utf-8",
                                index_col=False)
    else:
        try:
            table = (pd.read_json(path, lines=True, dtype={"name": str, "label": str}, encoding="utf-8-sig")
                     if file_format == "jsonl" else pd.read_parquet(path))
        except Exception as error:  # pyarrow's and pandas' own errors do not name the file
            raise ValueError(f"{path}: not a readable places file ({type(error).__name__}: {error})") from None
    if "name" not in table.columns and "label" in table.columns:
        table = table.rename(columns={"label": "name"})
    missing = [column for column in ("name", "latitude", "longitude") if column not in table.columns]
    if missing:
        raise ValueError(f"{path}: a places file needs columns name (or label), latitude, longitude; missing {missing}")
    try:
        return normalize_places(table)
    except ValueError as error:
        raise ValueError(f"{path}: {error} (places are counted from 0, in file order)") from None


def _places_argument(value: str):
    """--places: a GeoNames spec is passed through to `geolocate`; anything else must be a places file."""
    if value == "geonames" or value.startswith("geonames:"):
        return value
    if not os.path.isfile(value):
        raise ValueError(f"--places {value!r} is neither 'geonames', 'geonames:CC' nor an existing places file")
    return load_places_table(value)


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {number}")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="contrastgeo", description="Geolocate social-media posts from their text.")
    commands = parser.add_subparsers(dest="command", required=True)
    predict = commands.add_parser(
        "predict", help="geolocate a CSV / JSONL / Parquet file of posts",
        description="Geolocate every post of a file; every input row is kept, in order (see `contrastgeo.predict`).",
    )
    predict.add_argument("--model", required=True, help="saved ContrastGeo model folder (or Hub id)")
    predict.add_argument("--input", required=True, help=f"file of posts, or {STDIO!r} for stdin")
    predict.add_argument("--output", required=True, help=f"predictions file, or {STDIO!r} for stdout")
    predict.add_argument("--text-column", default="text", help="column (JSONL: field) holding the post (default: text)")
    predict.add_argument("--top-k", type=_positive_int, default=5, help="places per post (default: 5)")
    predict.add_argument(
        "--places", default=None,
        help="gallery: geonames | geonames:CC | a places file (default: the model's label set)",
    )
    predict.add_argument("--input-format", choices=FORMATS, help="default: from the extension (stdin: jsonl)")
    predict.add_argument("--output-format", choices=FORMATS, help="default: from the extension (stdout: jsonl)")
    predict.add_argument("--batch-size", type=_positive_int, default=64, help="posts per forward pass (default: 64)")
    predict.add_argument(
        "--chunk-size", type=_positive_int, default=DEFAULT_CHUNK_SIZE,
        help=f"rows read, geolocated and written at a time (default: {DEFAULT_CHUNK_SIZE})",
    )
    predict.add_argument(
        "--rerank", action=argparse.BooleanOptionalAction, default=None,
        help="re-rank the top candidates with the matching head (default: as the model's config says)",
    )
    predict.add_argument(
        "--place-prior", choices=("population", "none"), default=None,
        help="weigh places by their population (GeoNames) or not (default: as the model's config says)",
    )
    predict.add_argument("--device", default=None, help="e.g. cpu, cuda:0 (default: accelerate's, else cuda if any)")
    predict.add_argument(
        "--dtype", choices=("float32", "bfloat16", "float16"), default="float32",
        help="weights' precision: bfloat16 / float16 halve their memory (meant for GPUs); the probabilities are "
             "computed in float32 either way (default: float32)",
    )
    predict.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")
    predict.set_defaults(handler=run_predict)
    space = commands.add_parser(
        "push-space", help="deploy the demo as a Hugging Face Space serving a model from the Hub",
        description="Upload space/ (app, map, requirements, card) to a Gradio Space and set its CONTRASTGEO_MODEL "
                    "variable to the model repository (see contrastgeo.space_hub).",
    )
    space.add_argument("--repo-id", required=True, help="the Space, e.g. you/contrastgeo-demo")
    space.add_argument("--model", required=True, help="the model repository the Space serves, e.g. you/swiss-k16")
    space.add_argument("--private", action="store_true")
    space.set_defaults(handler=run_push_space)
    return parser


def run_push_space(args) -> int:
    from .space_hub import push_space

    try:
        url = push_space(args.repo_id, args.model, private=args.private)
    except ValueError as error:
        print(f"push-space: {error}", file=sys.stderr)
        return 1
    print(f"deployed the demo for {args.model} to {url}")
    return 0


def _process_state(device):
    """accelerate's process layout when launched with several processes (accelerate launch / torchrun), else None."""
    if launched_process_count() <= 1:
        return None
    from accelerate import PartialState

    return PartialState(cpu=accelerate_cpu_flag(str(device or "").startswith("cpu")))


def _check_device(device: str):
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"--device {device!r} is not a device torch knows ({error})") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: torch sees no CUDA device here (use --device cpu)")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"--device {device}: torch sees {torch.cuda.device_count()} CUDA device(s)")


def _load_model(name_or_path: str, dtype: str = "float32"):
    """The model of --model: a saved folder, else a Hub id; a path that is not a model folder is named."""
    import torch

    from modeling_contrastgeo import ContrastGeoModel

    path = Path(name_or_path).expanduser()
    # A Hub id is "name" or "user/name"; anything else that does not exist is a mistyped path.
    looks_local = path.exists() or name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local and not path.is_dir():
        raise ValueError(f"--model {name_or_path}: no such model folder")
    if looks_local and not (path / "config.json").is_file():
        raise ValueError(f"--model {name_or_path}: not a saved model folder (no config.json; train.py's --output-dir "
                         "or save_pretrained writes one)")
    try:
        return ContrastGeoModel.from_pretrained(str(path) if looks_local else name_or_path,
                                                dtype=getattr(torch, dtype))
    except OSError as error:
        where = "" if looks_local else "no such folder here, and as a Hub id: "
        raise ValueError(f"--model {name_or_path}: {where}could not load it ({error})") from None


def run_predict(args) -> int:
    import torch

    if args.input != STDIO and Path(args.input).is_dir():
        raise ValueError(f"--input {args.input} is a folder: give a file of posts")
    if args.output != STDIO and Path(args.output).is_dir():
        raise ValueError(f"--output {args.output} is a folder: give the path of the predictions file")
    if args.device is not None:
        _check_device(args.device)
    state = _process_state(args.device)
    places = _places_argument(args.places) if args.places is not None else None
    device = args.device or (state.device if state is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    model = _load_model(args.model, args.dtype).to(device).eval()
    try:
        counts = predict_file(
            model, args.input, args.output, text_column=args.text_column, top_k=args.top_k, places=places,
            input_format=args.input_format, output_format=args.output_format, batch_size=args.batch_size,
            chunk_size=args.chunk_size, rerank=args.rerank, place_prior=args.place_prior,
            show_progress=not args.quiet, state=state,
        )
    finally:
        if state is not None:
            state.destroy_process_group()
    main_process = state is None or state.is_main_process
    if not args.quiet and main_process:
        target = "stdout" if args.output == STDIO else args.output
        print(f"contrastgeo: wrote {counts['rows']} rows ({counts['errors']} with an error) to {target}",
              file=sys.stderr)
    if counts is not None and counts["rows"] and counts["errors"] == counts["rows"]:  # None off the main process
        print("contrastgeo predict: error: no row could be geolocated (each has its error in the output): "
              "check --input-format and --text-column", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    """Entry point of the `contrastgeo` console script; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except ValueError as error:
        print(f"contrastgeo {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
