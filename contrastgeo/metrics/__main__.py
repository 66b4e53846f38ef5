"""`python -m contrastgeo.metrics push --repo-id you/geolocation`: publish the geolocation metric as a Hub Space."""

import argparse
import sys


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m contrastgeo.metrics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="create or update a Space holding the metric, its card and widget")
    push.add_argument("--repo-id", required=True, help="the Space, e.g. you/geolocation (the module takes its name)")
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    push.add_argument("--commit-message", default=None)
    arguments = parser.parse_args(argv)
    from .hub import push_metric

    try:
        url = push_metric(arguments.repo_id, private=arguments.private, revision=arguments.revision,
                          commit_message=arguments.commit_message)
    except ValueError as error:
        print(f"push: {error}", file=sys.stderr)
        return 1
    print(f"pushed the geolocation metric to {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
