"""The error raised for unreadable or invalid task data."""

from adapters.errors import UniPELTError


class DataError(UniPELTError, ValueError):
    """A data file is missing, malformed or holds a value the task does not accept."""
