"""The one error type for a mistake in what the user asked for.

Every stage raises a subclass of `UserError` (TableError, ConfigError, DatasetNotFoundError,
PresetError, ...) for bad input: a missing or corrupt file, an out-of-range value, a device
that is not there. The `lcsim` command prints it as one line, `lcsim <cmd>: error: <message>`,
and exits with status 2; anything else is a bug and keeps its traceback. In Python the
subclasses also derive from the builtin they refine (ValueError, FileNotFoundError), so
callers that caught those keep working. `user_errors()` turns the ValueError of a config
dataclass's validation (STYLE: validation in __post_init__) into a UserError where a command
builds the config from what the user typed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["UserError", "PresetError", "EXIT_USER_ERROR", "user_errors", "check_preset_keys"]

EXIT_USER_ERROR = 2  # argparse's own status for a bad argument


class UserError(Exception):
    """Bad input, named in the message; printed without a traceback by the CLI."""


class PresetError(UserError, ValueError):
    """A preset file that cannot be used: the message names the preset, the key and the value."""


def check_preset_keys(doc: Any, what: str, required: Sequence[str],
                      allowed: Sequence[str]) -> dict:
    """`doc` itself if it is a JSON object whose keys include `required` and are among
    `allowed`; otherwise a PresetError that names `what`, the keys and the allowed ones."""
    if not isinstance(doc, dict):
        raise PresetError(f"{what} must be a JSON object, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(allowed))
    if unknown:
        raise PresetError(f"{what}: unknown key(s) {', '.join(map(repr, unknown))}; allowed: "
                          f"{', '.join(allowed)}")
    missing = [k for k in required if k not in doc]
    if missing:
        raise PresetError(f"{what} lacks the key(s) {', '.join(map(repr, missing))}")
    return doc


@contextlib.contextmanager
def user_errors(*types: type[BaseException]) -> Iterator[None]:
    """Re-raise `types` (default ValueError) as UserError: for code that validates what the
    user typed (config dataclasses), never around the work itself, where they are bugs."""
    try:
        yield
    except UserError:
        raise
    except tuple(types or (ValueError,)) as e:
        raise UserError(str(e)) from None
