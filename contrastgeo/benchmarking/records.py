"""The benchmark's results file: a JSON list of records, one per (task, method, k, seed), and its schema.

A record is keyed by (task, method, k, seed) and carries the hash of everything its result depends on
(`config_hash`: the method's settings, the task's content, the encoder's weights, the protocol version). The
runner skips a cell whose record has the current hash and recomputes it otherwise, replacing the old record, so
the file never holds two results for one cell.
"""

import contextlib
import hashlib
import json
import math
import os
import subprocess
from pathlib import Path

# Bump when the protocol changes in a way that invalidates every stored result (metrics, sampling, scoring).
PROTOCOL_VERSION = 1
METRIC_FIELDS = ("top1", "top5", "macro_acc", "acc@1km", "acc@25km", "acc@161km", "acc@200km", "acc@750km",
                 "acc@2500km", "median_km", "mean_km")
# Reported by trained geolocation methods only (train.py's evaluation): calibration of the top-1 probability.
CALIBRATION_FIELDS = ("ece", "ece_uncalibrated", "probability_temperature")
REQUIRED_FIELDS = ("task", "method", "k", "seed", *METRIC_FIELDS, "num_examples", "commit", "config_hash",
                   "wall_time_s")


def config_hash(payload):
    """First 16 hex digits of the sha256 of `payload` as canonical JSON (sorted keys)."""
    text = json.dumps({"protocol_version": PROTOCOL_VERSION, **payload}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def record_key(record):
    """(task, method, k, seed) of a record; k and seed are None for methods without a support set."""
    return record["task"], record["method"], record["k"], record["seed"]


def _optional_int(value):
    return value is None or (isinstance(value, int) and not isinstance(value, bool))


def validate_record(record, where="record"):
    """Raise ValueError naming the field when `record` does not follow the schema."""
    if not isinstance(record, dict):
        raise ValueError(f"{where} must be a JSON object, got {type(record).__name__}")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise ValueError(f"{where} lacks field(s) {missing}")
    for name in ("task", "method", "commit", "config_hash"):
        if not isinstance(record[name], str) or not record[name]:
            raise ValueError(f"{where}: {name} must be a non-empty string, got {record[name]!r}")
    for name in ("k", "seed"):
        if not _optional_int(record[name]):
            raise ValueError(f"{where}: {name} must be an integer or null, got {record[name]!r}")
    if record["k"] is not None and record["k"] < 1:
        raise ValueError(f"{where}: k must be >= 1, got {record['k']}")
    for name in (*METRIC_FIELDS, "wall_time_s"):
        value = record[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"{where}: {name} must be a finite number, got {value!r}")
    for name in METRIC_FIELDS:
        if not name.endswith("_km") and not 0.0 <= record[name] <= 1.0:
            raise ValueError(f"{where}: {name} is a fraction and must be in [0, 1], got {record[name]}")
    if "invalidated" in record and (not isinstance(record["invalidated"], str) or not record["invalidated"].strip()):
        raise ValueError(f"{where}: invalidated must be the reason, a non-empty string, got {record['invalidated']!r}")


class ResultsStore:
    """results.json: load, look up by key and hash, add (replacing the cell's old record), save atomically."""

    def __init__(self, path):
        self.path = Path(path)
        self.records = []
        if self.path.is_file():
            try:
                records = json.loads(self.path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as error:
                raise ValueError(f"{self.path}: not valid JSON ({error.msg} at line {error.lineno})") from None
            if not isinstance(records, list):
                raise ValueError(f"{self.path}: must hold a JSON list of records")
            seen = set()
            for index, record in enumerate(records):
                validate_record(record, f"{self.path} record {index}")
                if record_key(record) in seen:
                    raise ValueError(f"{self.path} record {index}: a second record for cell {record_key(record)}")
                seen.add(record_key(record))
            self.records = records

    def find(self, key, expected_hash):
        """The record of cell `key` when its config hash is `expected_hash` and it is not invalidated, else None."""
        for record in self.records:
            if (record_key(record) == tuple(key) and record["config_hash"] == expected_hash
                    and not record.get("invalidated")):
                return record
        return None

    def add(self, record):
        """Validate, replace any record of the same cell, and write the file."""
        validate_record(record)
        self.records = [old for old in self.records if record_key(old) != record_key(record)]
        self.records.append(record)
        self.save()

    def save(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ordered = sorted(self.records, key=lambda r: (r["task"], r["method"], r["k"] or 0, r["seed"] or 0))
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(ordered, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(temporary, self.path)


def merge_results(store, paths):
    """Add the records of other results.json files (a grid split over machines or parallel runs) to `store`.

    Each file is validated as a whole first (a bad file merges nothing); a merged record replaces the store's record
    of the same cell, and a later file wins over an earlier one. Writes the store; returns the number merged.
    """
    incoming = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"--merge-results: {path} does not exist")
        incoming += ResultsStore(path).records
    latest = {record_key(record): record for record in incoming}  # the last file's record of a cell
    store.records = [record for record in store.records if record_key(record) not in latest] + list(latest.values())
    store.save()
    return len(latest)


def git_commit(repo_dir, output_files=()):
    """HEAD's hash, with "+dirty" when the working tree differs from it (changed or untracked files, so that
    uncommitted benchmark code shows); read-only git calls; "unknown" without git.

    Changes to `output_files` (the runner's own results.json and reports) do not count: otherwise every run after
    the first on a clean checkout would read "+dirty" from the records the earlier runs wrote. Only those files:
    the folder they sit in (benchmarks/) also holds benchmark code."""
    def git(*arguments):
        return subprocess.run(["git", "--no-optional-locks", "-C", str(repo_dir), *arguments],
                              capture_output=True, text=True, timeout=30)

    repo_root = Path(repo_dir).resolve()
    excluded = [f":(exclude){Path(path).resolve().relative_to(repo_root).as_posix()}" for path in output_files
                if Path(path).resolve().is_relative_to(repo_root)]  # git status never sees files outside the repo
    pathspec = ["--", ".", *excluded] if excluded else []
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return "unknown"
        dirty = git("status", "--porcelain", "--untracked-files=normal", *pathspec).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")


@contextlib.contextmanager
def exclusive_results_dir(results_dir):
    """Hold `results_dir/.lock` for the duration: two runs writing one results.json would drop each other's records.

    A lock left by a process that no longer runs is taken over; one held by a live process raises ValueError.
    """
    lock = Path(results_dir) / ".lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            descriptor = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                owner = int(lock.read_text().strip() or 0)
                os.kill(owner, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # stale: its process is gone
                continue
            except PermissionError:
                pass
            raise ValueError(f"{results_dir} is in use by another benchmark run (process {owner}); "
                             f"wait for it or remove {lock} if that process is not a benchmark run") from None
    try:
        os.write(descriptor, str(os.getpid()).encode())
        os.close(descriptor)
        yield
    finally:
        lock.unlink(missing_ok=True)
