"""Inference speed of `geolocate` against the bare text encoder: same posts, batch size and process.

    python benchmarks/speed_inference.py                              # midwest-2017 query, 2,000 posts, MiniLM
    python benchmarks/speed_inference.py --model DIR --task vardial-ch --num-posts 500

Timed on the same posts (the first --num-posts of the task's query split), in one process, each method once per
round over --repeats rounds (interleaved, so that a busy spell of a shared machine hits every method; the best
round is kept, as `timeit` does). Every method batches the posts sorted by length (as `geolocate`,
`encode_posts` and sentence-transformers' `encode` do: less padding) and returns them in input order:
- bare encoder: tokenizer + `AutoModel` forward + mean pooling, batches of --batch-size, the model's truncation
  length (`config.max_post_length`), no ContrastGeo code: the floor that geolocate can only approach;
- `encode_posts`: ContrastGeo's post embeddings (encoder + pooling + projection + normalisation, and the character
  n-gram channel where the model has one);
- `geolocate`, (a) the trained label set (`config.places`) and (b) the worldwide GeoNames gallery (cities with at
  least 15,000 people, about 34k places). The gallery is encoded once before the timing (`gallery_embeddings`
  caches it; the one-off time is reported apart), as a user predicting many posts would have it.

Without --model, an untrained model of train.py's default ContrastGeo configuration around MiniLM is used
(`contrastgeo.training.modeling.build_model`: the character n-gram channel and the population prior included, the
task's places with their populations as train.py saves them): the speed does not depend on the weights. Memory: for
each method, the peak resident set (`ru_maxrss`, which sees torch's allocations) of its timed passes, reset at the
start of each pass (`/proc/self/clear_refs`), and how far it rose above the resident set at that start. The report
goes to benchmarks/RESULTS_speed_inference.md (rewritten on each run); the last line printed is
`ratio=<geolocate posts/s with the GeoNames gallery / bare encoder posts/s>`.
--profile adds the functions where `geolocate` spends its time (cProfile, one pass with the GeoNames gallery).
"""

import argparse
import cProfile
import datetime
import io
import os
import platform
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

from benchmarks.speed_training import PhasePeakRSS  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS_speed_inference.md"
GOAL = 0.9


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="saved ContrastGeo model folder (default: untrained MiniLM-based model)")
    parser.add_argument("--encoder", help="the bare encoder to compare with (default: the model's text encoder)")
    parser.add_argument("--task", default="midwest-2017", help="task whose query posts are timed (datasets_scripts)")
    parser.add_argument("--num-posts", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per method (best kept)")
    parser.add_argument("--gallery", default="geonames", help="the large gallery: geonames or geonames:CC")
    parser.add_argument("--profile", action="store_true", help="also profile geolocate with the large gallery")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's; 1 steadies timings on a busy "
                                                    "machine, where threads of one op wait for each other)")
    parser.add_argument("--results", default=str(RESULTS_PATH), help="where the Markdown report goes")
    options = parser.parse_args(argv)
    for flag, minimum in (("num_posts", 1), ("batch_size", 1), ("repeats", 1)):
        if getattr(options, flag) < minimum:
            parser.error(f"--{flag.replace('_', '-')} must be at least {minimum}, got {getattr(options, flag)}")
    if options.threads is not None and options.threads < 1:
        parser.error(f"--threads must be at least 1, got {options.threads}")
    for flag in ("model", "encoder"):
        folder = getattr(options, flag)
        if folder is not None and not Path(folder).is_dir():
            parser.error(f"--{flag} {folder}: no such folder")
    return options


def load_posts_and_places(task: str, num_posts: int):
    from datasets_scripts import load_task

    dataset = load_task(task)
    posts = dataset["query"]["text"][:num_posts]
    if len(posts) < num_posts:
        raise ValueError(f"task {task} has only {len(posts)} query posts; lower --num-posts")
    return list(posts), dataset["places"].to_list()


def build_models(options, places):
    from transformers import AutoModel

    from modeling_contrastgeo import ContrastGeoModel

    if options.model:
        model = ContrastGeoModel.from_pretrained(options.model)
    else:
        from contrastgeo.training.defaults import MODEL_DEFAULTS
        from contrastgeo.training.modeling import build_model

        # What train.py builds by default (n-gram channel, population prior), before training.
        model = build_model({"model_config": dict(MODEL_DEFAULTS["contrastgeo"]), "model_name_or_path": None,
                             "init_location_encoder": None}, places=places)
    encoder_path = options.encoder or model.config.text_encoder_name_or_path
    if not encoder_path or not Path(encoder_path).exists():
        raise ValueError(f"the bare encoder {encoder_path!r} is not a local folder: pass --encoder PATH")
    bare_encoder = AutoModel.from_pretrained(encoder_path).eval()
    return model.eval(), bare_encoder


def bare_encoder_pass(encoder, tokenizer, posts, batch_size, max_length):
    """What any sentence-embedding user pays: tokenize, forward, mean-pool (no ContrastGeo code). Batches are formed
    from the posts sorted by length, as `geolocate` and `encode_posts` form theirs (on tweets, batching in input
    order pads to 1.5 times the tokens); the embeddings come back in input order."""
    order = sorted(range(len(posts)), key=lambda i: len(posts[i]))
    with torch.inference_mode():
        pooled = []
        for start in range(0, len(posts), batch_size):
            encoded = tokenizer([posts[i] for i in order[start:start + batch_size]], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
            states = encoder(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled.append((states * mask).sum(1) / mask.sum(1).clamp_min(1e-9))
        sorted_embeddings = torch.cat(pooled)
        embeddings = torch.empty_like(sorted_embeddings)
        embeddings[torch.tensor(order)] = sorted_embeddings
        return embeddings


def time_call(function) -> tuple[float, float]:
    """(wall-clock seconds, CPU seconds of this process): CPU time hardly moves when other processes load the
    machine, so it is the steadier of the two on a shared machine."""
    wall_start, cpu_start = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall_start, time.process_time() - cpu_start


def profile_text(function, lines: int = 18) -> str:
    profiler = cProfile.Profile()
    profiler.runcall(function)
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("cumulative").print_stats(lines)
    return stream.getvalue()


def write_report(path, options, context, rows, ratios, gallery_info, profile):
    lines = [
        "# Inference speed: `geolocate` vs the bare text encoder",
        "",
        "Written by `benchmarks/speed_inference.py` (do not edit by hand).",
        "",
        f"- Command: `{' '.join(['python benchmarks/speed_inference.py', *context['command']])}` at commit "
        f"`{context['commit']}`",
        f"- Date: {context['date']}; machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch threads "
        f"{torch.get_num_threads()}; Python {platform.python_version()}, torch {torch.__version__}",
        f"- Task `{options.task}`: the first {options.num_posts} query posts (mean {context['mean_chars']:.0f} "
        f"characters); model {context['model']}; bare encoder `{context['encoder']}`; batch {options.batch_size}, "
        f"truncation {context['max_length']} tokens; best of {options.repeats} interleaved rounds",
        f"- Galleries: (a) the trained label set, {context['num_label_places']} places; (b) `{options.gallery}`, "
        f"{gallery_info['places']} places, encoded once in {gallery_info['seconds']:.1f} s "
        f"({gallery_info['places'] / gallery_info['seconds']:.0f} places/s; embeddings {gallery_info['mb']:.1f} MB)",
        f"- Load average (1 min) before / after: {context['load_before']:.2f} / {context['load_after']:.2f} "
        "(the machine is shared: other work slows every method alike, roughly)",
        "",
        "| method | wall s (best round) | posts / s | vs bare encoder | CPU s (best round) | vs bare encoder, CPU "
        "| peak RSS of its passes (MB) | RSS increase during a pass (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    bare = rows["bare encoder"]
    for name, row in rows.items():
        # Where the peak could not be reset (not Linux), only a lower bound of the increase is known.
        peak, increase = (f"{row['peak_mb']:.0f}", f"{row['increase_mb']:.0f}") if row["exact"] else (
            "-", f"{row['increase_mb']:.0f} (at least)")
        lines.append(f"| {name} | {row['seconds']:.2f} | {options.num_posts / row['seconds']:.1f} | "
                     f"{bare['seconds'] / row['seconds']:.3f} | {row['cpu_seconds']:.2f} | "
                     f"{bare['cpu_seconds'] / row['cpu_seconds']:.3f} | {peak} | {increase} |")
    lines += [
        "",
        f"**ratio = {ratios['b']:.3f}** (geolocate posts/s with the `{options.gallery}` gallery / bare encoder "
        f"posts/s, wall clock; with the trained label set: {ratios['a']:.3f}; goal >= {GOAL}). In CPU time: "
        f"{ratios['b_cpu']:.3f} and {ratios['a_cpu']:.3f}.",
    ]
    if profile:
        lines += ["", f"## Profile of one `geolocate` pass with the `{options.gallery}` gallery", "", "```",
                  profile.strip(), "```"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def main(argv=None):
    from contrastgeo.benchmarking.records import git_commit

    options = parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    load_before = os.getloadavg()[0]
    posts, places = load_posts_and_places(options.task, options.num_posts)
    model, bare_encoder = build_models(options, places)
    tokenizer, batch_size, max_length = model.tokenizer, options.batch_size, model.config.max_post_length
    print(f"{len(posts)} posts, {len(model.config.places)} trained places, batch {batch_size}", file=sys.stderr)

    start = time.perf_counter()
    gallery = model.resolve_places(options.gallery)
    embeddings = model.gallery_embeddings(gallery)  # cached: geolocate below reuses it
    gallery_info = {"places": len(gallery), "seconds": time.perf_counter() - start,
                    "mb": embeddings.numel() * embeddings.element_size() / 2**20}
    print(f"gallery {options.gallery}: {len(gallery)} places encoded in {gallery_info['seconds']:.1f} s",
          file=sys.stderr)

    label_set_method, gallery_method = "geolocate (a) trained label set", f"geolocate (b) {options.gallery}"
    methods = {
        "bare encoder": lambda texts: bare_encoder_pass(bare_encoder, tokenizer, texts, batch_size, max_length),
        "encode_posts": lambda texts: model.encode_posts(texts, batch_size=batch_size),
        label_set_method: lambda texts: model.geolocate(texts, top_k=5, batch_size=batch_size),
        gallery_method: lambda texts: model.geolocate(texts, places=gallery, top_k=5, batch_size=batch_size),
    }
    for method in methods.values():  # warm-up: first-call allocations and lazy imports stay out of the timing
        method(posts[:batch_size])
    rows = {name: {"seconds": float("inf"), "cpu_seconds": float("inf"), "peak_mb": 0.0, "increase_mb": 0.0,
                   "exact": True} for name in methods}
    for round_index in range(options.repeats):
        for name, method in methods.items():
            memory = PhasePeakRSS()  # this pass's own peak, not one an earlier stage left
            seconds, cpu_seconds = time_call(lambda: method(posts))
            pass_memory = memory.stop()
            rows[name]["seconds"] = min(rows[name]["seconds"], seconds)
            rows[name]["cpu_seconds"] = min(rows[name]["cpu_seconds"], cpu_seconds)
            rows[name]["peak_mb"] = max(rows[name]["peak_mb"], pass_memory["peak_mb"] or 0.0)
            rows[name]["increase_mb"] = max(rows[name]["increase_mb"], pass_memory["increase_mb"])
            rows[name]["exact"] = rows[name]["exact"] and pass_memory["exact"]
            print(f"round {round_index + 1}: {name}: {len(posts) / seconds:.1f} posts/s, {cpu_seconds:.1f} CPU s",
                  file=sys.stderr)
    profile = profile_text(lambda: methods[gallery_method](posts)) if options.profile else None

    ratios = {}
    for key, name in (("a", label_set_method), ("b", gallery_method)):
        ratios[key] = rows["bare encoder"]["seconds"] / rows[name]["seconds"]
        ratios[f"{key}_cpu"] = rows["bare encoder"]["cpu_seconds"] / rows[name]["cpu_seconds"]
    context = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mean_chars": sum(map(len, posts)) / len(posts),
        "model": f"`{options.model}`" if options.model else (
            "untrained, train.py's default ContrastGeo configuration around all-MiniLM-L6-v2"),
        "command": sys.argv[1:] if argv is None else list(argv), "commit": git_commit(REPO_ROOT),
        "encoder": options.encoder or model.config.text_encoder_name_or_path,
        "max_length": max_length, "num_label_places": len(model.config.places),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    write_report(options.results, options, context, rows, ratios, gallery_info, profile)
    print(Path(options.results).read_text(encoding="utf-8"))
    print(f"ratio={ratios['b']:.4f}")


if __name__ == "__main__":
    main()
