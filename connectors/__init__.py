"""galton.connectors: platform data <-> the engine's plain structures.

Reads annotations from files (and, with the ``labelstudio`` extra, from a Label Studio
server) into :class:`galton.quality.AnnotationMatrix`, and writes results back.
"""

from ._csv import CrowdDataset, read_annotations_csv, read_crowd_dataset, read_gold_csv
from ._samples import load_sample, sample_names, sample_path

__all__ = [
    "CrowdDataset",
    "load_sample",
    "read_annotations_csv",
    "read_crowd_dataset",
    "read_gold_csv",
    "sample_names",
    "sample_path",
]
