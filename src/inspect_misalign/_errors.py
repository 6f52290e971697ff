"""The project's error type: one line that says what went wrong and what to do."""


class MisalignError(ValueError):
    """Bad input to an inspect-misalign task, command or API; the message names the fix."""
