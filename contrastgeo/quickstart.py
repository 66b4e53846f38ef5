"""The quickstart (`make quickstart` / `python -m contrastgeo.quickstart`).

1. Loads the default task from the Parquet vendored in `datasets_scripts/data` (no raw data or network needed).
2. Trains the default few-shot ContrastGeo model (K posts per place, train.py's defaults) on the CPU.
3. Prints its metrics next to two frozen-encoder baselines measured in the same run: zero-shot prompt retrieval
   and class prototypes (mean of the same K support embeddings).
4. Geolocates a few example posts with the saved model, loaded back with `AutoModel.from_pretrained`.
5. Says how to start the Space on http://127.0.0.1:7860 with that model.
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

DEFAULT_TASK = "umass-global"
EXAMPLE_POSTS = [
    "Ya estoy en la playa con mis amigos, que calor hace hoy",
    "Macet banget di jalan tol pagi ini, capek deh",
    "Off to the pub for the footy, cheers mate",
    "Bom dia! Partiu trabalhar, segunda-feira de novo",
]
METRICS = ("top1", "top5", "macro_acc", "acc@161km", "median_km", "mean_km")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default=DEFAULT_TASK, help="a task vendored in datasets_scripts/data")
    parser.add_argument("--shots", type=int, default=16, help="labelled posts per place (K)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output-dir", default="outputs/quickstart", help="the model's folder, replaced on each run")
    # The quickstart's budget (about 10 minutes on 2 CPU cores); train.py alone runs its full schedule.
    parser.add_argument("--max-train-steps", type=int, default=120, help="cap the training steps (0: no cap)")
    return parser.parse_args(argv)


def frozen_baselines(task, support_indices):
    """Zero-shot prompt retrieval and K-shot prototypes on the frozen text encoder (same support posts)."""
    import numpy as np

    from contrastgeo.baselines import prompt_similarity_scores, prototype_scores
    from contrastgeo.benchmarking.embeddings import encode_texts, place_prompt_embeddings, task_places
    from contrastgeo.benchmarking.evaluation import metrics_from_scores
    from contrastgeo.training.config import resolve_text_encoder
    from modeling_contrastgeo import ContrastGeoModel

    encoder = ContrastGeoModel.from_text_encoder(resolve_text_encoder(None), projection_dim=None).eval()
    places = task_places(task)
    query, pool = task["query"], task["pool"]
    support = pool.select(support_indices)
    query_embeds = encode_texts(encoder, query["text"], description="frozen encoder: query posts")
    support_embeds = encode_texts(encoder, support["text"], description="frozen encoder: support posts")
    place_embeds = place_prompt_embeddings(encoder, places, encoder.config.prompt_templates)
    true_latlon = np.stack([query["latitude"], query["longitude"]], axis=1)
    place_latlon = np.array([[p["latitude"], p["longitude"]] for p in places])
    labels = np.asarray(query["label"])
    scores = {
        "zero-shot prompt retrieval": prompt_similarity_scores(query_embeds, place_embeds),
        "prototypes (frozen, same K)": prototype_scores(query_embeds, support_embeds, np.asarray(support["label"]),
                                                        len(places)),
    }
    return {name: metrics_from_scores(s, labels, true_latlon, place_latlon) for name, s in scores.items()}


def format_table(rows):
    header = "| method | " + " | ".join(METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 1)]
    for name, metrics in rows.items():
        cells = [f"{100 * metrics[m]:.1f}%" if not m.endswith("_km") else f"{metrics[m]:.0f}" for m in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    from transformers import AutoModel

    from contrastgeo.training import main as train_main
    from datasets_scripts import VENDORED_DIR, load_task
    from datasets_scripts.fewshot import k_shot_indices

    task_dir = VENDORED_DIR / args.task
    if not task_dir.is_dir():
        available = sorted(p.name for p in VENDORED_DIR.iterdir() if p.is_dir())
        raise SystemExit(f"task {args.task!r} is not vendored; choose one of {available}")
    task = load_task(args.task, data_dir=task_dir)
    print(f"Task {args.task}: {task['pool'].num_rows} pool posts, {task['query'].num_rows} query posts, "
          f"{len(task['pool'].features['label'].names)} places; K={args.shots}, seed {args.seed}\n")

    train_flags = ["--objective", "contrastgeo", "--task", args.task, "--task-data-dir", str(task_dir),
                   "--shots", str(args.shots), "--seed", str(args.seed), "--output-dir", args.output_dir,
                   "--overwrite-output-dir"]  # the demo's folder: each quickstart replaces the model of the last
    if args.max_train_steps:
        train_flags += ["--max-train-steps", str(args.max_train_steps)]
    results = {"ContrastGeo (default, fine-tuned)": train_main(train_flags)}

    # The same K support posts train.py sampled: same sampler, same seed.
    support_indices, _ = k_shot_indices(task["pool"], args.shots, args.seed)
    results.update(frozen_baselines(task, support_indices))
    print(f"\nQuery set of {args.task} ({task['query'].num_rows} posts), K={args.shots}:\n")
    print(format_table(results))

    model = AutoModel.from_pretrained(args.output_dir, trust_remote_code=True)
    print(f"\nThe saved model ({args.output_dir}) on a few posts:")
    for post, places in zip(EXAMPLE_POSTS, model.geolocate(EXAMPLE_POSTS, top_k=3)):
        guesses = ", ".join(f"{p['name']} ({p['score']:.2f})" for p in places)
        print(f"  {post!r}\n    -> {guesses}")
    print(f"\nStart the demo on http://127.0.0.1:7860 with:  python space/app.py --model {args.output_dir}")
    print(f"Its model card is {Path(args.output_dir) / 'README.md'}; train.py --push-to-hub --hub-model-id you/NAME "
          "publishes a run, and `contrastgeo push-space` deploys the demo for it.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
