"""galton.quality.dynamics: label-error detection from training dynamics.

Consensus tells which label the raters meant; training dynamics tell which labels a
model cannot reconcile with the rest of the data. :func:`find_mislabeled` trains a
small torch head over item features and scores every item with Data Maps, AUM,
forgetting events, (I)NCV, self-influence and a noise classifier; given out-of-fold
probabilities of the caller's own model (``pred_probs=``) it scores those too, without
training (:func:`given_scores`). The scoring functions themselves are numpy and take
what any training loop recorded.

Importing this package does not import torch: the trainer is loaded by the first call.

>>> from galton.quality.dynamics import area_under_margin
>>> area_under_margin([[2.0, -1.0]]).tolist()
[-2.0, 1.0]
"""

from ._api import (
    ALL_METHODS,
    DEFAULT_COMBINE,
    DEFAULT_METHODS,
    GIVEN,
    SMALL_DATA_ITEMS,
    find_mislabeled,
    ncv_plan,
    threshold_plan,
)
from ._features import (
    cached_features,
    content_key,
    npy_features,
    sentence_embeddings,
    tabular_features,
    text_features,
    vector_features,
)
from ._plots import plot_aum_histogram, plot_data_map
from ._report import MislabeledReport
from ._scores import (
    GIVEN_SCORES,
    DataMap,
    ForgettingCounts,
    GivenScores,
    area_under_margin,
    aum_threshold,
    check_pred_probs,
    data_map,
    fit_noise_classifier,
    forgetting_events,
    given_scores,
    rank_average,
    self_influence,
)

__all__ = [
    "ALL_METHODS",
    "DEFAULT_COMBINE",
    "DEFAULT_METHODS",
    "GIVEN",
    "GIVEN_SCORES",
    "SMALL_DATA_ITEMS",
    "DataMap",
    "ForgettingCounts",
    "GivenScores",
    "MislabeledReport",
    "area_under_margin",
    "aum_threshold",
    "cached_features",
    "check_pred_probs",
    "content_key",
    "data_map",
    "find_mislabeled",
    "fit_noise_classifier",
    "forgetting_events",
    "given_scores",
    "ncv_plan",
    "npy_features",
    "plot_aum_histogram",
    "plot_data_map",
    "rank_average",
    "self_influence",
    "sentence_embeddings",
    "tabular_features",
    "text_features",
    "threshold_plan",
    "vector_features",
]
