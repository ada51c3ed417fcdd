"""Errors the toolkit raises on purpose: the CLI prints them as one line, without a traceback."""


class AnyGPTError(Exception):
    """Base class for every error that is the user's input or setup, not a bug."""


class MediaError(AnyGPTError):
    """A media file is missing, unreadable, empty, silent or of the wrong kind."""


class BundleError(AnyGPTError):
    """A bundle is unknown, incomplete, corrupt or does not match its manifest."""


class LayoutError(AnyGPTError):
    """A tokenizer or a code sequence does not match the vocabulary layout."""
