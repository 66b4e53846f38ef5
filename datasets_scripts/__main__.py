"""Command line of the task builders.

    python -m datasets_scripts list
    python -m datasets_scripts build --task vardial-ch --raw-dir ../shared/data --output-dir data_cache/vardial-ch
    python -m datasets_scripts stats --task vardial-ch            # or: stats --data-dir data_cache/vardial-ch
    python -m datasets_scripts stats --all --write-readme README.md   # the five tasks' table, into the README
    python -m datasets_scripts push --data-dir data_cache/vardial-ch --repo-id user/vardial-ch   # to the Hub

`--raw-dir` defaults to $CONTRASTGEO_RAW_DIR, else ../shared/data beside the repository; `build --output-dir`
defaults to the task cache (~/.cache/contrastgeo/tasks/<task>, or $CONTRASTGEO_CACHE_DIR/<task>), where
`load_task` looks first.
"""

import argparse
import logging
import sys
from pathlib import Path

from . import BENCHMARK_TASKS, TASK_BUILDERS, build_and_write_task, default_cache_dir, default_raw_dir, load_task


def _parser():
    parser = argparse.ArgumentParser(
        prog="python -m datasets_scripts", description="Build the ContrastGeo benchmark tasks."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="list the tasks that can be built")
    build = commands.add_parser("build", help="build a task from raw data and write Parquet + a dataset card")
    build.add_argument("--task", required=True, choices=sorted(TASK_BUILDERS))
    build.add_argument(
        "--raw-dir", type=Path, default=None,
        help="raw data folder (default: $CONTRASTGEO_RAW_DIR, else ../shared/data beside the repository)",
    )
    build.add_argument("--output-dir", type=Path, default=None, help="folder to write (default: the task cache)")
    stats = commands.add_parser("stats", help="print a task's statistics table")
    stats.add_argument("--task", choices=sorted(TASK_BUILDERS), default=None)
    stats.add_argument("--data-dir", type=Path, default=None, help="a folder written by `build` (instead of --task)")
    stats.add_argument("--raw-dir", type=Path, default=None)
    stats.add_argument("--all", action="store_true", help="one summary row per benchmark task (the README's table)")
    stats.add_argument("--write-readme", type=Path, default=None,
                       help="with --all: write the table between the statistics markers of this README")
    push = commands.add_parser("push", help="upload a built task (Parquet + card) as a Hub dataset repository")
    push.add_argument("--task", choices=sorted(TASK_BUILDERS), default=None,
                      help="a task from the task cache (built first when needed)")
    push.add_argument("--data-dir", type=Path, default=None, help="a folder written by `build` (instead of --task)")
    push.add_argument("--raw-dir", type=Path, default=None)
    push.add_argument("--repo-id", required=True, help="Hub dataset repository, e.g. user/vardial-ch")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    push.add_argument("--commit-message", default=None)
    return parser


def main(argv=None):
    """Entry point; returns the exit status (1 with a one-line message for bad input or data)."""
    arguments = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(arguments)
    except (OSError, ValueError) as error:  # OSError: a raw file that is missing or unreadable
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(arguments):
    from .common import render_statistics_table, task_statistics

    if arguments.command == "list":
        for name, (module_name, kwargs) in TASK_BUILDERS.items():
            options = ", ".join(f"{key}={value!r}" for key, value in kwargs.items())
            print(f"{name}\tdatasets_scripts.{module_name}.build({options})")
        return 0
    if arguments.command == "build":
        raw_dir = arguments.raw_dir or default_raw_dir()
        output_dir = arguments.output_dir or default_cache_dir() / arguments.task
        if output_dir.exists() and not output_dir.is_dir():
            raise ValueError(f"--output-dir {output_dir} is a file: build writes a folder there")
        dataset_dict, written = build_and_write_task(arguments.task, output_dir, raw_dir)
        print(f"{arguments.task}: written to {written}")
        print(render_statistics_table(task_statistics(dataset_dict)))
        return 0
    if arguments.command == "push":
        return _push(arguments)
    if arguments.all:
        return _summary_statistics(arguments)
    if arguments.write_readme is not None:
        print("stats: --write-readme writes the --all table; add --all", file=sys.stderr)
        return 2
    if (arguments.task is None) == (arguments.data_dir is None):
        print("stats: give exactly one of --all, --task or --data-dir", file=sys.stderr)
        return 2
    dataset_dict = load_task(arguments.task, data_dir=arguments.data_dir, raw_dir=arguments.raw_dir)
    print(render_statistics_table(task_statistics(dataset_dict)))
    return 0


def _push(arguments):
    from .hub import push_dataset_folder

    if (arguments.task is None) == (arguments.data_dir is None):
        print("push: give exactly one of --task or --data-dir", file=sys.stderr)
        return 2
    folder = arguments.data_dir
    if folder is None:
        folder = default_cache_dir() / arguments.task
        if not (folder / "README.md").is_file():
            build_and_write_task(arguments.task, folder, arguments.raw_dir or default_raw_dir())
    url = push_dataset_folder(folder, arguments.repo_id, private=arguments.private, revision=arguments.revision,
                              commit_message=arguments.commit_message)
    print(f"pushed {folder} to {url}")
    return 0


def _summary_statistics(arguments):
    from .common import render_task_summary_table, replace_readme_statistics, task_statistics

    table = render_task_summary_table(
        {name: task_statistics(load_task(name, raw_dir=arguments.raw_dir)) for name in BENCHMARK_TASKS}
    )
    print(table)
    if arguments.write_readme is not None:
        readme = arguments.write_readme.read_text(encoding="utf-8")
        arguments.write_readme.write_text(replace_readme_statistics(readme, table), encoding="utf-8")
        print(f"written to {arguments.write_readme}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
