"""Images far from every class: mean cosine distance to their nearest train images.

An image's score is the mean cosine distance of its L2-normalised features to its ``neighbors``
nearest train images (itself left out). The threshold comes from the train images' own scores:
Tukey's far-out fence, the third quartile plus ``iqr`` times the interquartile range, so on a
clean set few or no train images pass it, while an image of another domain lands far above.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..trust.ood import knn_distance


@dataclass
class Outliers:
    distance: np.ndarray  # (N,) mean cosine distance to the nearest train images
    threshold: float  # the far-out fence of the train images' distances
    flagged: np.ndarray  # (N,) bool: distance above the threshold


def find_outliers(features: np.ndarray, train: np.ndarray, *, neighbors: int = 5, iqr: float = 3.0) -> Outliers:
    """Images whose kNN distance to the train images exceeds the train distances' far-out fence."""
    train = np.asarray(train, bool)
    if train.sum() < 2:
        return Outliers(np.zeros(len(features)), float("inf"), np.zeros(len(features), bool))
    d = knn_distance(features, train, neighbors)
    q1, q3 = np.percentile(d[train], [25, 75])
    threshold = float(q3 + iqr * (q3 - q1))
    return Outliers(d, threshold, d > threshold)
