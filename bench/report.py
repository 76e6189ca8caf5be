"""The Markdown report: tables of medians, minimums and ratios, targets, problems, raw samples.

Every cell is ``median (min X)`` over the successful runs of that tool in that row; a ratio is the
ratio of the two medians. Runs that failed or timed out are not timings: the cell says so, and the
command with its output is listed under "Problems" at the top of the report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.timing import Series, ratio


def fmt_seconds(seconds: float) -> str:
    """Format a duration with a unit and a precision that suits its size."""
    if seconds < 0.01:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 100:
        return f"{seconds:.2f} s"
    return f"{seconds:.0f} s"


def fmt_ratio(value: float | None) -> str:
    """Format a ratio of medians."""
    if value is None:
        return "—"
    return f"{value:.3f}x" if value < 0.1 else f"{value:.2f}x"


def fmt_cell(series: Series | None) -> str:
    """Format one tool's timings: median and min, or why there are none."""
    if series is None:
        return "—"
    median, minimum = series.median, series.minimum
    if median is None or minimum is None:
        if series.timeouts:
            limit = series.timeouts[0].timeout or 0
            text = f"**timeout** (> {limit:.0f} s) x{len(series.timeouts)}"
        elif series.failures:
            text = f"**failed** x{len(series.failures)}"
        else:
            return series.skipped or "—"
    else:
        text = f"{fmt_seconds(median)} (min {fmt_seconds(minimum)})"
        bad = len(series.failures) + len(series.timeouts)
        if bad:
            text += f" [{bad} of {series.attempts} runs failed or timed out]"
    return f"{text}; {series.skipped}" if series.skipped else text


@dataclass(frozen=True)
class RatioColumn:
    """A column holding ``median(numerator) / median(denominator)``."""

    label: str
    numerator: str
    denominator: str


@dataclass
class Row:
    """One benchmark: the tools' timings side by side, and the target it is held to."""

    what: str
    cells: dict[str, Series]
    target: str = ""
    verdict: bool | None = None
    note: str = ""


@dataclass
class Table:
    """Rows that share the same tool columns and ratio columns."""

    title: str
    columns: list[str]
    ratios: list[RatioColumn]
    rows: list[Row] = field(default_factory=list)

    def ratio(self, row: Row, column: RatioColumn) -> float | None:
        """Return the ratio ``column`` of ``row``."""
        num, den = row.cells.get(column.numerator), row.cells.get(column.denominator)
        if num is None or den is None:
            return None
        return ratio(num, den)

    def render(self) -> str:
        """Render the table as Markdown."""
        header = ["what", *self.columns, *(r.label for r in self.ratios), "target", "notes"]
        lines = [
            f"#### {self.title}" if self.title else "",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(" --- " for _ in header) + "|",
        ]
        for row in self.rows:
            cells = [row.what]
            cells += [fmt_cell(row.cells.get(col)) for col in self.columns]
            cells += [fmt_ratio(self.ratio(row, col)) for col in self.ratios]
            cells.append(_verdict(row))
            cells.append(row.note.replace("\n", " ") or "")
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines).lstrip("\n")

    def render_samples(self) -> str:
        """Render every sample of every cell (milliseconds, in run order), each series once."""
        lines = []
        seen: set[int] = set()
        for row in self.rows:
            for col in self.columns:
                series = row.cells.get(col)
                if series is None or not series.attempts or id(series) in seen:
                    continue
                seen.add(id(series))
                samples = ", ".join(f"{1000 * s:.0f}" for s in series.samples)
                extra = []
                if series.failures:
                    extra.append(f"{len(series.failures)} failed")
                if series.timeouts:
                    extra.append(f"{len(series.timeouts)} timed out")
                suffix = f" ({', '.join(extra)})" if extra else ""
                lines.append(f"- {self.title} / {row.what} / {col}: [{samples}] ms{suffix}")
        return "\n".join(lines)


def _verdict(row: Row) -> str:
    if not row.target:
        return ""
    if row.verdict is None:
        return f"{row.target}: n/a"
    return f"{row.target}: {'met' if row.verdict else '**NOT met**'}"


@dataclass
class SuiteResult:
    """What one suite found: tables, free-form sections, problems, and the load around it."""

    name: str
    title: str
    method: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    sections: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    load_start: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_end: tuple[float, float, float] = (0.0, 0.0, 0.0)
    seconds: float = 0.0

    def render(self) -> str:
        """Render the suite as a Markdown section."""
        load = (
            f"load average at start {', '.join(f'{x:.2f}' for x in self.load_start)}; "
            f"at end {', '.join(f'{x:.2f}' for x in self.load_end)}; "
            f"took {fmt_seconds(self.seconds)}"
        )
        parts = [f"## {self.title}", "", f"_{load}_", ""]
        if self.method:
            parts += ["Method:", "", *(f"- {line}" for line in self.method), ""]
        for table in self.tables:
            parts += [table.render(), ""]
        for section in self.sections:
            parts += [section, ""]
        return "\n".join(parts)

    def render_samples(self) -> str:
        """Render the raw samples of every table."""
        body = "\n".join(t.render_samples() for t in self.tables if t.rows).strip()
        return f"### {self.title}\n\n{body}\n" if body else ""


def faster_than(burrow: Series, other: Series, limit: float) -> bool | None:
    """Return whether median(burrow) / median(other) is below ``limit`` (a timeout counts)."""
    b, o = burrow.median, other.median
    if b is None:
        return None
    if o is None:
        if other.timeouts:
            return b < (other.timeouts[0].timeout or 0)
        return None
    return b / o < limit


def all_verdicts(*verdicts: bool | None) -> bool | None:
    """Return whether every known verdict is met (``None`` when none is known)."""
    known = [v for v in verdicts if v is not None]
    if not known:
        return None
    return all(known)
