"""Typed errors raised by the library; the service maps them to HTTP status codes."""


class UniPELTError(Exception):
    """Base class of every error this library raises on purpose."""


class ConfigError(UniPELTError, ValueError):
    """A method or model configuration holds an invalid value."""


class BackboneError(UniPELTError):
    """The backbone could not be loaded or has an unsupported layout."""


class ArtifactError(UniPELTError):
    """An adapter artifact is malformed, corrupt or does not fit the backbone."""


class BackboneMismatchError(ArtifactError):
    """An artifact was trained on a different backbone than the one loaded."""
