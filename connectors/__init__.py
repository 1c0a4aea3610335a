"""galton.connectors: platform data <-> the engine's plain structures.

Reads annotations from files (long CSV, Label Studio JSON exports) and, with the
``labelstudio`` extra, from a Label Studio server, into
:class:`galton.quality.AnnotationMatrix`; writes results back (predictions, task meta,
rater tables).
"""

from ._csv import CrowdDataset, read_annotations_csv, read_crowd_dataset, read_gold_csv
from ._errors import PlatformError
from ._export import write_table
from ._labelstudio import (
    GALTON_PREFIX,
    LabelStudioConnector,
    PredictionSpec,
    WriteSummary,
    is_galton_prediction,
    prediction_result,
)
from ._ls_config import LabelConfig, Question, parse_label_config
from ._ls_tasks import (
    AnnotationRecord,
    PulledProject,
    QuestionData,
    TaskRecord,
    WorkerInfo,
    parse_tasks,
    read_labelstudio_export,
)
from ._samples import load_sample, sample_names, sample_path
from ._seed import SeededProject, choices_config, rater_email, seed_crowd_project

__all__ = [
    "GALTON_PREFIX",
    "AnnotationRecord",
    "CrowdDataset",
    "LabelConfig",
    "LabelStudioConnector",
    "PlatformError",
    "PredictionSpec",
    "PulledProject",
    "Question",
    "QuestionData",
    "SeededProject",
    "TaskRecord",
    "WorkerInfo",
    "WriteSummary",
    "choices_config",
    "is_galton_prediction",
    "load_sample",
    "parse_label_config",
    "parse_tasks",
    "prediction_result",
    "rater_email",
    "read_annotations_csv",
    "read_crowd_dataset",
    "read_gold_csv",
    "read_labelstudio_export",
    "sample_names",
    "sample_path",
    "seed_crowd_project",
    "write_table",
]
