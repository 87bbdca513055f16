"""Reading a parsed TOML file with errors that name the file, the line and the key.

``tomllib`` gives values without positions, so :class:`Locator` scans the text for table headers
and keys (``[a.b]``, ``[[a.b]]`` by occurrence, ``key =``, dotted keys) to find the line of any
key path; a key inside an inline table gets the line of its table's key.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from ..errors import StudyFileError

__all__ = ["Locator", "Reader"]

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?")
_KEY = re.compile(r"""^\s*((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=""")


class Locator:
    """Line numbers of the tables and keys of a TOML text (1-based), for error messages."""

    def __init__(self, text: str) -> None:
        self.lines: dict[tuple, int] = {}
        table: tuple = ()
        counts: dict[tuple, int] = {}
        for number, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith("#"):
                continue
            header = _HEADER.match(line)
            if header:
                path = tuple(self._split(header.group(2)))
                if header.group(1) == "[[":
                    counts[path] = counts.get(path, -1) + 1
                    path = (*path, counts[path])
                table = path
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                self.lines.setdefault((*table, *self._split(key.group(1))), number)

    @staticmethod
    def _split(dotted: str) -> list:
        return [part.strip().strip("\"'") for part in re.findall(r"""[^."']+|"[^"]*"|'[^']*'""", dotted)
                if part.strip()]

    def line(self, path: tuple) -> int | None:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return None


class Reader:
    """Typed access to the parsed TOML with errors that name the file, line and key."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.locator = Locator(text)

    def fail(self, where: tuple, message: str):
        line = self.locator.line(where)
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in where).replace(".[", "[")
        at = f"{self.path}:{line}" if line else str(self.path)
        raise StudyFileError(f"{at}: {key}: {message}")

    def table(self, data: dict, where: tuple, allowed: dict) -> dict:
        """Check ``data`` is a table whose keys are all in ``allowed`` (key -> description)."""
        if not isinstance(data, dict):
            self.fail(where, f"expected a table, got {data!r}")
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(key, list(allowed), n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                self.fail((*where, key), f"unknown key; {hint}known keys: {', '.join(allowed)}")
        return data

    def number(self, value, where: tuple, unit: str, lo: float | None = None, hi: float | None = None,
               integer: bool = False) -> float | int:
        kind = "a whole number" if integer else "a number"
        unit_text = f" in {unit}" if unit else ""
        if isinstance(value, str):
            bare = re.match(r"^\s*([-+0-9.eE]+)\s*[A-Za-z%]+\s*$", value)
            fix = f"; write {bare.group(1)} (the key's unit is {unit})" if bare and unit else ""
            self.fail(where, f"{value!r}: expected {kind}{unit_text}, not a string{fix}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (integer and not isinstance(value, int)):
            self.fail(where, f"{value!r}: expected {kind}{unit_text}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            span = f"from {lo:g} to {hi:g}" if hi is not None else f"at least {lo:g}"
            self.fail(where, f"{value!r}: expected {kind} {span}{unit_text}")
        return value

    def string(self, value, where: tuple, choices=None) -> str:
        if not isinstance(value, str) or not value:
            self.fail(where, f"{value!r}: expected a non-empty string")
        if choices is not None and value not in choices:
            self.fail(where, f"{value!r}: expected one of {', '.join(choices)}")
        return value

    def strings(self, value, where: tuple, allow_empty: bool = True) -> tuple[str, ...]:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(where, f"{value!r}: expected a list of names, e.g. [\"FEMUR\", \"SKIN\"]")
        if not value and not allow_empty:
            self.fail(where, "empty list; give at least one value")
        return tuple(value)

    def alpha_beta(self, value, where: tuple) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"{value!r}: expected a table of structure = alpha/beta in Gy, e.g. {{ GTV = 4.0 }}")
        return {name: float(self.number(v, (*where, name), "Gy", lo=1e-6)) for name, v in value.items()}
