"""A table of text cells (``Grid``) written as a terminal table (rich), Markdown, LaTeX or HTML: the
output formats that the leaderboard, its curves and ablation views, and ``compare`` share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

BOLD = "{bold}"  # in legend lines: "bold", or the plain-text mark where styles do not show
PLAIN_BOLD_MARK = "*"


@dataclass
class Grid:
    """A table of text cells for ``emit``: ``header`` for Markdown/LaTeX/HTML, ``rich_header`` (may
    hold line breaks) for the terminal; the first ``n_fixed`` columns name the row and are repeated in
    every block of a terminal table too wide for the screen; ``groups`` are column indices kept in
    one block (default: each column alone)."""

    header: list[str]
    body: list[list[str]]
    bold: list[list[bool]]
    title: str
    legend: list[str]
    css_class: str = "leaderboard"
    rich_header: list[str] | None = None
    classes: list[list[str]] | None = None
    n_fixed: int = 3
    groups: list[list[int]] | None = None
    uniform_in_title: tuple[int, ...] = ()  # fixed columns the terminal leaves out when every row agrees
    left: tuple[int, ...] = (1,)  # left-justified columns (names); the others are numbers, right-justified

    def column_groups(self) -> list[list[int]]:
        return self.groups or [[i] for i in range(self.n_fixed, len(self.header))]


def emit(fmt: str, grid: Grid) -> Any:
    """A grid of text cells (bold where ``grid.bold``) as Markdown, LaTeX, HTML or a rich renderable,
    with its legend under the table."""
    header, body, best = grid.header, grid.body, grid.bold
    legend = [line.replace(BOLD, "bold") for line in grid.legend]
    if fmt == "md":
        mark = lambda text, b: f"**{text}**" if b else text  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(mark(t, b) for t, b in zip(r, bs)) + " |" for r, bs in zip(body, best)]
        return "\n".join(lines) + "\n\n" + "\n\n".join(legend) + "\n"
    if fmt == "latex":
        mark = lambda text, b: rf"\textbf{{{text}}}" if b else text  # noqa: E731
        lines = [r"\begin{tabular}{" + "rlr" + "c" * (len(header) - 3) + "}", r"\toprule",
                 " & ".join(_latex(h) for h in header) + r" \\", r"\midrule"]
        lines += [" & ".join(mark(_latex(t), b) for t, b in zip(r, bs)) + r" \\" for r, bs in zip(body, best)]
        lines += [r"\bottomrule", r"\end{tabular}", r"\par{\footnotesize " + r"\par ".join(_latex(t) for t in legend) + "}"]
        return "\n".join(lines) + "\n"
    if fmt == "html":
        import html as h

        classes = grid.classes or [[""] * len(r) for r in body]
        def td(text: str, b: bool, css: str) -> str:
            css = css or ("best" if b else "")
            attr = f' class="{css}"' if css else ""
            return f"<td{attr}><b>{h.escape(text)}</b></td>" if b else f"<td{attr}>{h.escape(text)}</td>"
        # a long metric name may break after an underscore, never between two letters
        head = "".join(f"<th>{h.escape(c).replace('_', '_<wbr>')}</th>" for c in header)
        trs = "".join("<tr>" + "".join(td(t, b, css) for t, b, css in zip(r, bs, cs)) + "</tr>"
                      for r, bs, cs in zip(body, best, classes))
        caption = "<br>".join(h.escape(t) for t in legend)
        return (f"<table class=\"{grid.css_class}\"><caption style=\"caption-side: bottom; text-align: left\">"
                f"{caption}</caption><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>\n")
    return _Blocks(grid)


_LATEX = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$", "{": r"\{",
          "}": r"\}", "±": r"$\pm$", "·": "/", "Δ": r"$\Delta$", "−": "-", "≈": r"$\approx$", "†": r"$\dagger$",
          "‡": r"$\ddagger$", "↑": r"$\uparrow$", "↓": r"$\downarrow$", "²": r"$^2$", "–": "--", "σ": r"$\sigma$",
          "η": r"$\eta$", "|": r"$|$", "√": r"$\surd$"}


def _latex(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


class _Blocks:
    """A rich renderable: the table cut into blocks of columns that fit the console's width (the
    row-naming columns repeated in each), the title above and the legend below. Where the output
    shows no styles (a file, a pipe) bold cells get a ``*`` mark instead."""

    def __init__(self, grid: Grid):
        self.grid = grid

    def _omitted(self) -> dict[int, str]:
        """Fixed columns with one value in every row: said once in the title instead ("3 seeds")."""
        g = self.grid
        return {i: g.body[0][i] for i in g.uniform_in_title if g.body and len({r[i] for r in g.body}) == 1}

    def _table(self, columns: list[int], plain: bool):
        from rich import box
        from rich.table import Table
        from rich.text import Text

        g = self.grid
        headers = g.rich_header or g.header
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, header_style="bold")
        for i in columns:
            table.add_column(headers[i], justify="left" if i in g.left else "right", no_wrap=i < g.n_fixed)
        for texts, bold in zip(g.body, g.bold):
            cells = []
            for i in columns:
                text = texts[i]
                if bold[i] and plain:
                    text = PLAIN_BOLD_MARK + ("" if text[:1] in "≈!†‡" else " ") + text
                cells.append(Text(text, style="bold" if bold[i] else ""))
            table.add_row(*cells)
        return table

    def _blocks(self, console: Any, options: Any, plain: bool) -> list[list[int]]:
        from rich.measure import Measurement

        fixed = [i for i in range(self.grid.n_fixed) if i not in self._omitted()]
        unbounded = options.update(max_width=10**6)  # Measurement.get clamps to the width it is given
        blocks: list[list[int]] = []
        current: list[int] = []
        for group in self.grid.column_groups():
            trial = current + group
            if current and Measurement.get(console, unbounded, self._table(fixed + trial, plain)).maximum > options.max_width:
                blocks.append(current)
                current = list(group)
            else:
                current = trial
        blocks.append(current)
        return [fixed + block for block in blocks]

    def __rich_console__(self, console: Any, options: Any):
        from rich.text import Text

        plain = console.color_system is None  # styles do not reach this output
        headers = self.grid.rich_header or self.grid.header
        # "1 seeds" -> "1 seed": the header names a plural count
        said = [f"{value} {headers[i][:-1] if value == '1' and headers[i].endswith('s') else headers[i]}"
                for i, value in self._omitted().items()]
        yield Text(self.grid.title + "".join(f" · {s}" for s in said), style="bold")
        for block in self._blocks(console, options, plain):
            yield self._table(block, plain)
            yield Text("")
        for line in self.grid.legend:
            yield Text(line.replace(BOLD, PLAIN_BOLD_MARK if plain else "bold"), style="dim")

    def __rich_measure__(self, console: Any, options: Any):
        from rich.measure import Measurement

        whole = self._table(list(range(len(self.grid.header))), False)
        return Measurement.get(console, options, whole).clamp(max_width=options.max_width)
