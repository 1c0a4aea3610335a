"""galton.quality.perspectives: when disagreement is the signal.

Consensus methods treat disagreement as noise around one true label. For subjective
tasks it can be the signal: groups of raters see the item differently. This package

* diagnoses each item's disagreement as *noise* or *systematic* (rater groups split),
  :func:`disagreement_diagnosis` (without groups, *noise* or *contested* from rater
  competence, :func:`competence_diagnosis`), draws juries from the groups' label
  distributions, :func:`group_jury_verdicts`, and exports soft labels,
  :func:`soft_labels` (numpy only);
* trains Davani et al.'s multi-annotator model, :func:`multi_annotator_model`, and
  Gordon et al.'s jury-learning model, :func:`jury_model`, whose
  :meth:`JuryModel.verdicts` reports the verdict distribution of a chosen jury
  composition (torch, loaded by the first call).

Importing this package does not import torch.

>>> from galton.quality import AnnotationMatrix
>>> from galton.quality.perspectives import soft_labels
>>> soft_labels(AnnotationMatrix.from_codes([0, 0], [0, 1], [0, 1])).tolist()
[[0.5, 0.5]]
"""

from ._diagnosis import (
    KINDS,
    UNGROUPED_KINDS,
    CompetenceDiagnosis,
    DisagreementDiagnosis,
    competence_diagnosis,
    disagreement_diagnosis,
    group_jury_verdicts,
    soft_labels,
)
from ._models import (
    JuryModel,
    JuryVerdicts,
    MultiAnnotatorModel,
    MultiAnnotatorPrediction,
    jury_model,
    multi_annotator_model,
)
from ._simulate import SimulatedPerspectives, simulate_perspectives

__all__ = [
    "KINDS",
    "UNGROUPED_KINDS",
    "CompetenceDiagnosis",
    "DisagreementDiagnosis",
    "JuryModel",
    "JuryVerdicts",
    "MultiAnnotatorModel",
    "MultiAnnotatorPrediction",
    "SimulatedPerspectives",
    "competence_diagnosis",
    "disagreement_diagnosis",
    "group_jury_verdicts",
    "jury_model",
    "multi_annotator_model",
    "simulate_perspectives",
    "soft_labels",
]
