"""Task data: GLUE and user-file readers, the shared records, and low-resource sampling."""

from adapters.data.errors import DataError
from adapters.data.examples import Example, TaskSpec
from adapters.data.generic import load_generic
from adapters.data.glue import (
    GLUE_TASKS,
    GlueFile,
    glue_dir_name,
    glue_split_path,
    load_glue_split,
    normalise_task_name,
    read_glue_tsv,
)
from adapters.data.sampling import LowResourceSplit, low_resource_split

__all__ = [
    "GLUE_TASKS",
    "DataError",
    "Example",
    "GlueFile",
    "LowResourceSplit",
    "TaskSpec",
    "glue_dir_name",
    "glue_split_path",
    "load_generic",
    "load_glue_split",
    "low_resource_split",
    "normalise_task_name",
    "read_glue_tsv",
]
