"""Geolocation metric for `evaluate`: load this folder with `evaluate.load` (see README.md)."""
