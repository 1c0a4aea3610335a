"""galton.connectors: platform data <-> the engine's plain structures.

Reads annotations from files (and, with the ``labelstudio`` extra, from a Label Studio
server) into :class:`galton.quality.AnnotationMatrix`, and writes results back.
"""

from ._csv import CrowdDataset, read_annotations_csv, read_crowd_dataset, read_gold_csv

__all__ = ["CrowdDataset", "read_annotations_csv", "read_crowd_dataset", "read_gold_csv"]
