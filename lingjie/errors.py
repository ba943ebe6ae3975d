"""User-facing errors.

Every error a user can cause (a bad YAML key, a missing column, a corrupt file) is raised as
a subclass of :class:`LingjieError`. The CLI catches these and prints one clear message
naming the thing and the fix, instead of a traceback from deep inside a framework.
It imports nothing but the standard library, so every layer may use it.
"""
from __future__ import annotations


class LingjieError(Exception):
    """Base class of errors caused by the user's config or data; printed without traceback."""


class ConfigError(LingjieError):
    """A config value is wrong. ``path`` is the dotted config path, e.g. ``features.age.type``."""

    def __init__(self, path: str, message: str, suggestions: list[str] | None = None) -> None:
        self.path = path
        self.message = message
        self.suggestions = list(suggestions or [])
        text = f"config error at '{path}': {message}" if path else f"config error: {message}"
        if self.suggestions:
            text += " (did you mean: " + ", ".join(self.suggestions) + "?)"
        super().__init__(text)


class DataError(LingjieError):
    """Input data is wrong: names the file and, when known, the row (0-based data row)."""

    def __init__(self, message: str, file: str | None = None, row: int | None = None) -> None:
        self.file = file
        self.row = row
        where = ""
        if file is not None:
            where = f" in {file}"
            if row is not None:
                where += f" at row {row}"
        super().__init__(f"data error{where}: {message}")


class RequestError(LingjieError):
    """A request to the inference server is wrong (a missing column, a wrong type, an
    undecodable image, too many instances): the server answers ``status`` (4xx) with a JSON body
    naming ``field`` (a JSON path such as ``instances[3].user_id``) and the problem."""

    def __init__(self, field: str, message: str, status: int = 400) -> None:
        self.field = field
        self.message = message
        self.status = status
        super().__init__(f"bad request at '{field}': {message}" if field else f"bad request: {message}")
