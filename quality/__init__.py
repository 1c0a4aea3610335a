"""galton.quality: the statistical engine (agreement, consensus, rater scores).

Pure numpy/scipy. Knows nothing of Label Studio, HTTP, files or dataframes.

>>> from galton.quality import AnnotationMatrix, dawid_skene
>>> m, enc = AnnotationMatrix.from_triplets([1, 1, 1, 2, 2, 2], ["a", "b", "c"] * 2, ["x", "x", "y", "y", "y", "y"])
>>> enc.decode_labels(dawid_skene(m).labels)
['x', 'y']
"""

from ._common import RandomState
from ._errors import ConvergenceWarning, GaltonError, InputError, StatisticsWarning
from ._matrix import AnnotationMatrix, Encoding
from ._result import AggregationResult

__all__ = [
    "AggregationResult",
    "AnnotationMatrix",
    "ConvergenceWarning",
    "Encoding",
    "GaltonError",
    "InputError",
    "RandomState",
    "StatisticsWarning",
]
