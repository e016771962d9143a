"""Exceptions with messages that name the problem and the fix.

Every error eocompress raises on bad input derives from :class:`EOCompressError`, a
``ValueError``, so callers can catch one type and the CLI can turn it into a one-line message.
"""

from __future__ import annotations


class EOCompressError(ValueError):
    """Base class: bad input, bad files or bad settings, with a message saying what to do."""


class SpecError(EOCompressError):
    """A codec spec string that cannot be parsed or does not fit the data."""


class NotFittedError(EOCompressError):
    """A codec (or model) used before ``fit``."""


class InputError(EOCompressError):
    """Input arrays of the wrong dtype, shape or content (NaN/Inf)."""


class FileFormatError(EOCompressError):
    """A file that is truncated, tampered with, of a future version or of the wrong kind."""


class DataMissingError(EOCompressError, FileNotFoundError):
    """Data that eocompress needs and cannot find, with where to get it."""
