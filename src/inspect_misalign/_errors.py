"""The project's error type: one line that says what went wrong and what to do."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class MisalignError(ValueError):
    """Bad input to an inspect-misalign task, command or API; the message names the fix."""


def validation_message(error: Any) -> str:
    """``where: what`` of a pydantic ``ValidationError``'s first error, for a one-line message."""
    err = error.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(top level)"
    return f"{where}: {str(err['msg']).removeprefix('Value error, ')}"


def read_text(path: Path, label: str) -> str:
    """A user's text file as UTF-8; a file that is not UTF-8 text, or cannot be read, is a one-line
    :class:`MisalignError` starting with ``label``."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MisalignError(f"{label} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise MisalignError(f"{label} cannot be read ({e.strerror or type(e).__name__}); pass a readable "
                            "file") from None


def read_yaml(path: Path, label: str) -> Any:
    """Parse a YAML file; invalid YAML is a one-line :class:`MisalignError` starting with ``label``."""
    import yaml

    try:
        return yaml.safe_load(read_text(path, label))
    except yaml.YAMLError as e:
        raise MisalignError(f"{label} is not valid YAML: {str(e).splitlines()[0]}") from e
