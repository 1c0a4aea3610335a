"""galton.quality: the statistical engine (agreement, consensus, rater scores).

Pure numpy/scipy. Knows nothing of Label Studio, HTTP, files or dataframes.

>>> from galton.quality import AnnotationMatrix, dawid_skene
>>> m, enc = AnnotationMatrix.from_triplets([1, 1, 1, 2, 2, 2], ["a", "b", "c"] * 2, ["x", "x", "y", "y", "y", "y"])
>>> enc.decode_labels(dawid_skene(m).labels)
['x', 'y']
"""

from ._agreement import (
    AgreementReport,
    Interval,
    PairwiseKappa,
    RawAgreement,
    agreement_report,
    bootstrap_interval,
    cohen_kappa,
    cohen_kappa_matrix,
    fleiss_kappa,
    gwet_ac1,
    krippendorff_alpha,
    raw_agreement,
)
from ._common import RandomState
from ._dawid_skene import dawid_skene, one_coin_dawid_skene
from ._errors import ConvergenceWarning, GaltonError, InputError, StatisticsWarning
from ._gating import GateDecisions, gate_boundaries, gate_workers, gold_gate
from ._glad import glad
from ._mace import mace
from ._matrix import AnnotationMatrix, Encoding
from ._raters import ItemScores, WorkerScores, beta_interval, item_scores, raykar_yu_score, worker_scores
from ._result import AggregationResult
from ._simulate import SimulatedCrowd, simulate_crowd
from ._votes import majority_vote, wawa, weighted_vote

__all__ = [
    "AggregationResult",
    "AgreementReport",
    "AnnotationMatrix",
    "ConvergenceWarning",
    "Encoding",
    "GaltonError",
    "GateDecisions",
    "InputError",
    "Interval",
    "ItemScores",
    "PairwiseKappa",
    "RandomState",
    "RawAgreement",
    "SimulatedCrowd",
    "StatisticsWarning",
    "WorkerScores",
    "agreement_report",
    "beta_interval",
    "bootstrap_interval",
    "cohen_kappa",
    "cohen_kappa_matrix",
    "dawid_skene",
    "fleiss_kappa",
    "gate_boundaries",
    "gate_workers",
    "glad",
    "gold_gate",
    "gwet_ac1",
    "item_scores",
    "krippendorff_alpha",
    "mace",
    "majority_vote",
    "one_coin_dawid_skene",
    "raw_agreement",
    "raykar_yu_score",
    "simulate_crowd",
    "wawa",
    "weighted_vote",
    "worker_scores",
]
