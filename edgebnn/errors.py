"""The one error hierarchy of edgebnn.

Every message says what was expected and what was found, and names the file,
op, flag or target concerned. The CLI turns these into click exceptions.
"""


class EdgeBnnError(Exception):
    """Base class of every error edgebnn raises on purpose."""


class DatasetError(EdgeBnnError):
    """A dataset is missing, truncated, corrupt or of an unknown format."""


class ModelError(EdgeBnnError):
    """A model name, model file or run directory is unknown or unusable."""


class UnsafeModelError(ModelError):
    """A model file would run code when loaded (a Lambda layer, a serialized
    function, a class outside Keras, Larq and the registered ones, or a
    SavedModel's graphs) and ``--trust-model-code`` was not given."""


class ConfigError(EdgeBnnError):
    """A training configuration or preset is invalid."""


class RunDirError(EdgeBnnError):
    """A run directory exists, is incomplete, or cannot be resumed."""


class WorkerError(EdgeBnnError):
    """Another worker of a multi-worker training run failed or stopped responding."""


class ConversionError(EdgeBnnError):
    """A Keras/Larq model could not be converted to TFLite."""


class VerificationError(EdgeBnnError):
    """A converted model does not match the trained one."""


class TFLiteFormatError(EdgeBnnError):
    """A file is not a readable TFLite flatbuffer."""


class UnsupportedOpError(EdgeBnnError):
    """A model holds an op or op option edgebnn cannot handle."""


class EngineError(EdgeBnnError):
    """An inference engine is unavailable or cannot run a model."""


class TargetError(EdgeBnnError):
    """A target is unknown, misdescribed, or the model does not fit it."""


class ToolchainError(EdgeBnnError):
    """A compiler, emulator or flashing tool is missing or failed."""


class MissingDependencyError(EdgeBnnError):
    """An optional Python package needed for this command is not installed."""


class OutputError(EdgeBnnError):
    """An output file or directory cannot be written, or may not be replaced."""


class UnsafeInputError(EdgeBnnError):
    """A name, path or target value cannot go into a generated file.

    Raised for a ``--name`` that is not a C identifier or would replace a
    runtime or firmware file, and for text a generated Makefile cannot hold
    safely (a newline, carriage return or NUL).
    """
