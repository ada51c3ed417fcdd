"""Errors the toolkit raises on purpose: the CLI prints them as one line, without a traceback."""

import sys


class AnyGPTError(Exception):
    """Base class for every error that is the user's input or setup, not a bug."""


class MediaError(AnyGPTError):
    """A media file is missing, unreadable, empty, silent or of the wrong kind."""


class BundleError(AnyGPTError):
    """A bundle is unknown, incomplete, corrupt or does not match its manifest."""


class LayoutError(AnyGPTError):
    """A tokenizer or a code sequence does not match the vocabulary layout."""


def run_command(func, args) -> int:
    """`func(args)` as a command: an error the user can fix (AnyGPTError, or SystemExit with a message)
    becomes one line `anygpt: error: ...` on stderr and exit status 2, without a traceback; Ctrl-C
    one line and status 130. Every command runs through here (cli.main, the stand-alone mains)."""
    try:
        return func(args)
    except AnyGPTError as e:
        message = str(e)
    except SystemExit as e:
        if not isinstance(e.code, str):
            raise
        message = e.code
    except KeyboardInterrupt:
        print("anygpt: interrupted", file=sys.stderr)
        return 130
    print(f"anygpt: error: {message}", file=sys.stderr)
    return 2
