"""Evaluation metrics; `GEOLOCATION_METRIC_PATH` is the folder to pass to `evaluate.load`."""

from pathlib import Path

from .calibration import expected_calibration_error
from .geolocation.geolocation import Geolocation, compute_geolocation_metrics, haversine_km

GEOLOCATION_METRIC_PATH = str(Path(__file__).resolve().parent / "geolocation")

__all__ = ["GEOLOCATION_METRIC_PATH", "Geolocation", "compute_geolocation_metrics", "expected_calibration_error",
           "haversine_km"]
