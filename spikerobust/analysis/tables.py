"""Plain-text tables for reports (no extra dependency)."""

from __future__ import annotations

from typing import Sequence

__all__ = ["markdown_table"]


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]], floatfmt: str = ".2f") -> str:
    """A GitHub-markdown table; floats are formatted with ``floatfmt``.

    Examples:
        >>> print(markdown_table(["m", "acc"], [[0.5, 91.234]]))
        | m | acc |
        |---|---|
        | 0.50 | 91.23 |
    """
    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"markdown_table: every row must have {len(header)} cells (the header's length)")

    def fmt(v: object) -> str:
        return format(v, floatfmt) if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
