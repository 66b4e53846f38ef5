"""Expected calibration error of top-1 confidences (Guo et al., 2017: equal-width bins over [0, 1])."""

import numpy as np


def expected_calibration_error(confidences, correct, num_bins: int = 15) -> float:
    """Sum over bins of |accuracy - mean confidence| weighted by the share of examples in the bin.

    Args:
        confidences: (N,) probability of each example's top-1 prediction, in [0, 1].
        correct: (N,) whether that prediction is right (bool or 0/1).
        num_bins: equal-width confidence bins; a confidence of exactly 1 falls in the last bin.
    """
    confidences = np.asarray(confidences, dtype=np.float64).reshape(-1)
    correct = np.asarray(correct, dtype=np.float64).reshape(-1)
    if confidences.size == 0:
        raise ValueError("expected_calibration_error needs at least one example")
    if confidences.shape != correct.shape:
        raise ValueError(f"{confidences.size} confidences but {correct.size} correctness values")
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1, got {num_bins}")
    bad = np.flatnonzero(~np.isfinite(confidences) | (confidences < 0) | (confidences > 1))
    if bad.size:
        raise ValueError(f"confidences[{bad[0]}] = {confidences[bad[0]]} is not a probability in [0, 1]")
    bins = np.minimum((confidences * num_bins).astype(np.int64), num_bins - 1)
    confidence_sums = np.bincount(bins, weights=confidences, minlength=num_bins)
    correct_sums = np.bincount(bins, weights=correct, minlength=num_bins)
    return float(np.abs(correct_sums - confidence_sums).sum() / confidences.size)
