"""Counts of one import, the progress line while it runs, and the summary at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TextIO

from alert_history.legacy.mapping import Skip

MAX_EXAMPLES = 5  # skipped rows shown by id per table


@dataclass
class TableCounts:
    """What happened to the rows of one legacy table."""

    label: str  # "events" or "classifications", with the table named when ambiguous
    table: str
    dry_run: bool = False
    read: int = 0
    written: int = 0  # with dry_run: rows that would be written
    unparsable: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def skip(self, row_id: object, skip: Skip) -> None:
        self.unparsable[skip.field] += 1
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(f"{self.table} id={row_id}: {skip.detail}")

    @property
    def skipped(self) -> int:
        return self.read - self.written

    @property
    def already_imported(self) -> int:
        """Rows mapped but not written: their state (or a newer classification) was stored."""
        return self.skipped - self.unparsable.total()

    def line(self) -> str:
        unparsable = self.unparsable.total()
        if self.dry_run:
            return (
                f"{self.label}: read {self.read}, would write {self.written}, "
                f"skipped {self.skipped} (unparsable {unparsable})"
            )
        return (
            f"{self.label}: read {self.read}, written {self.written}, skipped {self.skipped} "
            f"(already imported {self.already_imported}, unparsable {unparsable})"
        )

    def details(self) -> list[str]:
        if not self.unparsable:
            return []
        reasons = ", ".join(f"{name} {n}" for name, n in sorted(self.unparsable.items()))
        return [f"  unparsable {self.label}: {reasons}", *(f"    {e}" for e in self.examples)]


class Progress:
    """One updating line on a terminal (`\\r`), else one line per batch."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._width = 0

    def update(self, counts: TableCounts) -> None:
        text = f"import-legacy: {counts.line()}"
        if self._tty:
            self._stream.write("\r" + text.ljust(self._width))
            self._width = max(self._width, len(text))
        else:
            self._stream.write(text + "\n")
        self._stream.flush()

    def finish(self) -> None:
        """End the updating line, so what follows starts on a line of its own."""
        if self._tty and self._width:
            self._stream.write("\n")
            self._stream.flush()
        self._width = 0


def summary(header: str, tables: list[TableCounts]) -> str:
    lines = [header]
    for counts in tables:
        lines.append(counts.line())
        lines.extend(counts.details())
    return "\n".join(lines)
