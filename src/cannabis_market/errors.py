"""Error types shared by every layer; the CLI maps them to exit status 2."""

from __future__ import annotations

from dataclasses import dataclass, field


class InputError(ValueError):
    """Bad input from a user (a parameter, a file, a window): the message says what and which rule."""


@dataclass(frozen=True)
class Problem:
    """One broken rule in one file/column, with how many rows break it and a few examples."""

    file: str
    column: str | None
    rule: str
    n_rows: int = 0
    examples: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        where = self.file if not self.column else f"{self.file}, column '{self.column}'"
        rows = f" ({self.n_rows} row{'s' if self.n_rows != 1 else ''})" if self.n_rows else ""
        ex = f"; e.g. {', '.join(self.examples[:5])}" if self.examples else ""
        return f"{where}: {self.rule}{rows}{ex}"


class DataValidationError(InputError):
    """A dataset breaks the data contract; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem], path: str = "") -> None:
        self.problems = list(problems)
        self.path = path
        head = f"dataset {path!s} is invalid" if path else "dataset is invalid"
        n = len(self.problems)
        lines = [f"{head}: {n} problem{'s' if n != 1 else ''}"] + [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))
