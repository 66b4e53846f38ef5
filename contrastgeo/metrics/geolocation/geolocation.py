"""Geolocation metric: label accuracy (top-1, top-5, macro) and great-circle error (acc@km, mean, median).

This file is self-contained on purpose: `evaluate.load` copies it alone into its module cache and imports it
there, so it may only import numpy, datasets, evaluate and the standard library.
"""

import datasets
import evaluate
import numpy as np

EARTH_RADIUS_KM = 6371.0088
DEFAULT_DISTANCE_THRESHOLDS_KM = (1, 25, 161, 200, 750, 2500)
COORDINATES_CONFIG = "coordinates"
LABELS_CONFIG = "labels"

_COORDINATE_NAMES = ("predicted_latitude", "predicted_longitude", "true_latitude", "true_longitude")

_DESCRIPTION = """\
Geolocation metric for models that place a text (e.g. a social-media post) on the map. It reports the
great-circle (haversine) error between the predicted and true coordinates: the fraction of examples within
1, 25, 161 (100 miles), 200, 750 and 2500 km, and the mean and median error in km. With the "labels" config
it also reports place-label accuracy: top-1, macro (class-balanced) top-1 and, when ranked predictions are
given, top-5.
"""

_CITATION = """\
@article{li2024contrastgeo,
  title   = {Leveraging Contrastive Learning for Few-shot Geolocation of Social Posts},
  author  = {Li, Menglin and Lim, Kwan Hui},
  journal = {arXiv preprint arXiv:2403.00786},
  year    = {2024}
}
@inproceedings{cheng2010you,
  title     = {You are where you tweet: a content-based approach to geo-locating Twitter users},
  author    = {Cheng, Zhiyuan and Caverlee, James and Lee, Kyumin},
  booktitle = {Proceedings of the 19th ACM International Conference on Information and Knowledge Management},
  pages     = {759--768},
  year      = {2010}
}
"""

_KWARGS_DESCRIPTION = """
Args:
    predicted_latitude (`list` of `float`): predicted latitudes in degrees, in [-90, 90].
    predicted_longitude (`list` of `float`): predicted longitudes in degrees, in [-180, 180].
    true_latitude (`list` of `float`): true latitudes in degrees, in [-90, 90].
    true_longitude (`list` of `float`): true longitudes in degrees, in [-180, 180].
    predictions (`list` of `int`, config "labels" only): predicted place label per example.
    references (`list` of `int`, config "labels" only): true place label per example.
    top_k_predictions (`list` of `list` of `int`, optional, config "labels" only): ranked place labels per
        example, best first, shape (N, k), passed to `compute()`. `top5` is the fraction of examples whose
        reference is among the first min(k, 5) labels; with k < 5 it is a lower bound of top-5 accuracy
        (exact when the model knows at most k places).
    distance_thresholds_km (`tuple` of `float`, optional): thresholds for the `acc@<t>km` keys.
        Defaults to (1, 25, 161, 200, 750, 2500).
Returns:
    acc@<t>km (`float`): fraction of examples with error <= t km (inclusive), one key per threshold.
    mean_km (`float`), median_km (`float`): mean and median great-circle error in km.
    num_examples (`int`): number of examples scored.
    top1 (`float`), macro_acc (`float`): label accuracy and its mean over reference classes (config "labels").
    top5 (`float`): only when `top_k_predictions` is given.
Examples:
    >>> geolocation = evaluate.load("contrastgeo/metrics/geolocation", config_name="labels")
    >>> results = geolocation.compute(
    ...     predicted_latitude=[48.8566], predicted_longitude=[2.3522],
    ...     true_latitude=[51.5074], true_longitude=[-0.1278],
    ...     predictions=[1], references=[0])
    >>> round(results["mean_km"], 1), results["top1"], results["acc@750km"]
    (343.6, 0.0, 1.0)
"""


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km between points given in degrees; numpy broadcasting over all arguments."""
    lat1, lon1, lat2, lon2 = (np.radians(np.asarray(value, dtype=np.float64)) for value in (lat1, lon1, lat2, lon2))
    half_chord = (
        np.sin((lat2 - lat1) / 2.0) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2.0) ** 2
    )
    # Rounding can push near-antipodal pairs a hair above 1, where arcsin is undefined.
    return 2.0 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(half_chord, 0.0, 1.0)))


def _as_vector(values, name, dtype):
    """Convert to a 1-D array, raising ValueError naming the argument if that is impossible."""
    try:
        array = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be a 1-D sequence of numbers: {error}") from None
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
    return array


def _validate_coordinates(array, name, bound):
    non_finite = np.flatnonzero(~np.isfinite(array))
    if non_finite.size:
        index = non_finite[0]
        raise ValueError(f"{name}[{index}] is {array[index]}: coordinates must be finite (no NaN/inf)")
    outside = np.flatnonzero(np.abs(array) > bound)
    if outside.size:
        index = outside[0]
        raise ValueError(f"{name}[{index}] = {array[index]} is outside [-{bound:g}, {bound:g}]")


def _as_labels(values, name, expected_ndim):
    try:
        array = np.asarray(values)
    except ValueError as error:  # ragged rows
        raise ValueError(f"{name} must be a rectangular array of class ids: {error}") from None
    if array.ndim != expected_ndim:
        raise ValueError(f"{name} must be {expected_ndim}-D, got shape {array.shape}")
    # Float labels would let NaN or 2.5 through, and NaN never equals anything: require integer class ids.
    # Arrays and tensors of an integer dtype are fine as they are; lists are checked as given.
    integer_array = np.issubdtype(array.dtype, np.integer) and not isinstance(values, (list, tuple))
    if array.size and not integer_array:
        # Element by element as given: numpy would turn [0, 1.5] into floats and [0, True] into integers.
        given = np.asarray(values, dtype=object)
        for index in np.ndindex(given.shape):
            value = given[index]
            if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
                where = index[0] if len(index) == 1 else index
                raise ValueError(f"{name}[{where}] = {value!r} is not an integer class id")
    try:
        return array.astype(np.int64)
    except OverflowError:
        raise ValueError(f"{name} holds a class id beyond the 64-bit integers") from None


def _threshold_key(threshold):
    return f"acc@{threshold:g}km"


def _validate_thresholds(distance_thresholds_km):
    thresholds = _as_vector(distance_thresholds_km, "distance_thresholds_km", np.float64)
    for index, threshold in enumerate(thresholds):
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"distance_thresholds_km[{index}] = {threshold} must be a finite number >= 0")
    keys = [_threshold_key(threshold) for threshold in thresholds]
    duplicates = sorted({key for key in keys if keys.count(key) > 1})
    if duplicates:
        raise ValueError(f"distance_thresholds_km has duplicate thresholds: {duplicates}")
    return thresholds


def _label_metrics(predictions, references, top_k_predictions, num_examples):
    if (predictions is None) != (references is None):
        missing = "references" if references is None else "predictions"
        raise ValueError(f"{missing} is missing: label accuracy needs both predictions and references")
    if predictions is None:
        if top_k_predictions is not None:
            raise ValueError("top_k_predictions needs references (and predictions) to score top-5")
        return {}
    predictions = _as_labels(predictions, "predictions", 1)
    references = _as_labels(references, "references", 1)
    for name, labels in (("predictions", predictions), ("references", references)):
        if len(labels) != num_examples:
            raise ValueError(f"{name} has {len(labels)} values but the coordinates have {num_examples}")
    correct = predictions == references
    classes = np.unique(references)
    per_class_accuracy = [correct[references == label].mean() for label in classes]
    results = {"top1": float(correct.mean()), "macro_acc": float(np.mean(per_class_accuracy))}
    if top_k_predictions is not None:
        top_k_predictions = _as_labels(top_k_predictions, "top_k_predictions", 2)
        if top_k_predictions.shape[0] != num_examples or top_k_predictions.shape[1] < 1:
            raise ValueError(
                f"top_k_predictions must have shape ({num_examples}, k) with k >= 1, got {top_k_predictions.shape}"
            )
        hits = (top_k_predictions[:, :5] == references[:, None]).any(axis=1)
        results["top5"] = float(hits.mean())
    return results


def compute_geolocation_metrics(
    predicted_latitudes,
    predicted_longitudes,
    true_latitudes,
    true_longitudes,
    predictions=None,
    references=None,
    top_k_predictions=None,
    distance_thresholds_km=DEFAULT_DISTANCE_THRESHOLDS_KM,
):
    """Score geolocation predictions.

    Args:
        predicted_latitudes, predicted_longitudes, true_latitudes, true_longitudes: 1-D sequences of degrees,
            one value per example (latitude in [-90, 90], longitude in [-180, 180]).
        predictions, references: optional 1-D integer class ids (give both or neither).
        top_k_predictions: optional (N, k) integer class ids ranked best first; `top5` uses the first min(k, 5)
            columns, so with k < 5 it is a lower bound of top-5 accuracy.
        distance_thresholds_km: thresholds (km, >= 0) for the inclusive `acc@<t>km` keys.

    Returns:
        dict with `acc@<t>km` per threshold, `mean_km`, `median_km`, `num_examples` (int) and, when labels are
        given, `top1`, `macro_acc` (mean over reference classes of their top-1 accuracy) and, with
        `top_k_predictions`, `top5`. Every value except `num_examples` is a Python float.

    Raises:
        ValueError: naming the argument and the first bad index, for empty input, length mismatches,
            NaN/inf or out-of-range coordinates, non-integer labels, or bad thresholds.
    """
    coordinates = {}
    for name, values, bound in (
        ("predicted_latitudes", predicted_latitudes, 90.0),
        ("predicted_longitudes", predicted_longitudes, 180.0),
        ("true_latitudes", true_latitudes, 90.0),
        ("true_longitudes", true_longitudes, 180.0),
    ):
        array = _as_vector(values, name, np.float64)
        _validate_coordinates(array, name, bound)
        coordinates[name] = array
    lengths = {name: len(array) for name, array in coordinates.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"coordinate lengths differ: {lengths}")
    num_examples = lengths["predicted_latitudes"]
    if num_examples == 0:
        raise ValueError("no examples to score: the coordinate sequences are empty")
    thresholds = _validate_thresholds(distance_thresholds_km)

    results = _label_metrics(predictions, references, top_k_predictions, num_examples)
    distances = haversine_km(
        coordinates["predicted_latitudes"],
        coordinates["predicted_longitudes"],
        coordinates["true_latitudes"],
        coordinates["true_longitudes"],
    )
    for threshold in thresholds:
        results[_threshold_key(threshold)] = float(np.mean(distances <= threshold))
    results["mean_km"] = float(distances.mean())
    results["median_km"] = float(np.median(distances))
    results["num_examples"] = int(num_examples)
    return results


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Geolocation(evaluate.Metric):
    """`evaluate` wrapper of `compute_geolocation_metrics`.

    Configs: "coordinates" (the default) takes the four coordinate columns; "labels" also takes `predictions`
    and `references` (int class ids). evaluate keys its inputs on one feature set, so the two layouts are
    configs rather than a list of Features.
    """

    def _info(self):
        if self.config_name not in ("default", COORDINATES_CONFIG, LABELS_CONFIG):
            raise ValueError(
                f"unknown config_name {self.config_name!r}: use {COORDINATES_CONFIG!r} (default) or {LABELS_CONFIG!r}"
            )
        features = {name: datasets.Value("float64") for name in _COORDINATE_NAMES}
        if self._has_labels:
            features.update(predictions=datasets.Value("int64"), references=datasets.Value("int64"))
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(features),
            reference_urls=["https://arxiv.org/abs/2403.00786", "https://arxiv.org/abs/2305.01118"],
        )

    @property
    def _has_labels(self):
        return self.config_name == LABELS_CONFIG

    def _check_inputs(self, has_predictions, has_references, coordinates_given):
        # evaluate's base class quietly ignores inputs its features do not name and fails with a bare
        # TypeError on missing ones: catch both here with a message that says what to do.
        if not self._has_labels and (has_predictions or has_references):
            raise ValueError(
                f"predictions/references were given but the {self.config_name!r} config scores coordinates only: "
                f"load the metric with config_name={LABELS_CONFIG!r}"
            )
        if self._has_labels and coordinates_given and not (has_predictions and has_references):
            raise ValueError(f"the {LABELS_CONFIG!r} config needs both predictions and references")

    @staticmethod
    def _check_values(labels, coordinates):
        # Before evaluate casts them to its features: the cast would truncate a label of 1.7 to 1, and its errors
        # name neither the argument nor the example.
        given = [name for name in _COORDINATE_NAMES if coordinates.get(name) is not None]
        if given and len(given) < len(_COORDINATE_NAMES):
            missing = [name for name in _COORDINATE_NAMES if name not in given]
            raise ValueError(f"{', '.join(missing)} missing: give all of {', '.join(_COORDINATE_NAMES)}")
        for name in given:
            _validate_coordinates(_as_vector(coordinates[name], name, np.float64), name,
                                  90.0 if name.endswith("latitude") else 180.0)
        for name, values in labels.items():
            if values is not None:
                _as_labels(values, name, 1)

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Score the given examples plus those added with `add`/`add_batch` (see the inputs description)."""
        coordinates_given = any(kwargs.get(name) is not None for name in _COORDINATE_NAMES)
        self._check_inputs(predictions is not None, references is not None, coordinates_given)
        self._check_values({"predictions": predictions, "references": references}, kwargs)
        return super().compute(predictions=predictions, references=references, **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of examples (coordinate lists, and labels with the "labels" config)."""
        self._check_inputs(predictions is not None, references is not None, coordinates_given=True)
        self._check_values({"predictions": predictions, "references": references}, kwargs)
        return super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one example (coordinates, and `prediction`/`reference` with the "labels" config)."""
        self._check_inputs(prediction is not None, reference is not None, coordinates_given=True)
        as_lists = {name: None if value is None else [value] for name, value in kwargs.items()}
        self._check_values({"prediction": None if prediction is None else [prediction],
                            "reference": None if reference is None else [reference]}, as_lists)
        return super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(
        self,
        predicted_latitude,
        predicted_longitude,
        true_latitude,
        true_longitude,
        predictions=None,
        references=None,
        top_k_predictions=None,
        distance_thresholds_km=DEFAULT_DISTANCE_THRESHOLDS_KM,
    ):
        return compute_geolocation_metrics(
            predicted_latitude,
            predicted_longitude,
            true_latitude,
            true_longitude,
            predictions=predictions,
            references=references,
            top_k_predictions=top_k_predictions,
            distance_thresholds_km=distance_thresholds_km,
        )
