"""Errors that carry a one-line reason for the user (the CLI prints them without a traceback)."""


class EmodistillError(Exception):
    """Bad input or state that the user can fix; the message names the file/field and what was expected."""


class CorpusError(EmodistillError):
    """A corpus on disk is missing pieces or is malformed."""


class FeatureTableError(EmodistillError):
    """A feature table does not match the expected schema or metadata."""


class ConfigError(EmodistillError):
    """A config file or override is invalid."""


class TrainingDiverged(EmodistillError):
    """A loss became NaN or inf during training."""


class IntegrityError(EmodistillError):
    """A stored file does not match the digest recorded when it was written: it was changed since."""
