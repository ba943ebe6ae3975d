"""Missing-column errors that say what to type instead (Optuna/Ludwig-style did-you-mean)."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from lingjie.errors import DataError
from lingjie.schema import close_names


def missing_columns_error(missing: Sequence[str], available: Sequence[str],
                          file: str | None) -> DataError:
    """A DataError naming each missing column, its closest existing names, and the file."""
    parts = []
    for name in missing:
        close = close_names(name, available)
        hint = f" (did you mean: {', '.join(close)}?)" if close else ""
        parts.append(f"{name!r}{hint}")
    shown = ", ".join(available[:30]) + (", ..." if len(available) > 30 else "")
    noun = "column" if len(missing) == 1 else "columns"
    return DataError(f"missing {noun} {'; '.join(parts)}; the file has: {shown}", file=file)


def require_columns(needed: Iterable[str], available: Sequence[str], file: str | None) -> None:
    """Raise :func:`missing_columns_error` unless every needed column is available."""
    have = set(available)
    missing = [c for c in dict.fromkeys(needed) if c not in have]
    if missing:
        raise missing_columns_error(missing, available, file)
