"""Tables sized for a terminal: the leaderboard a command prints when it ends, and the Markdown
report's tables, readable at 120 columns.

Both are plain `tabulate` tables of the same strings the HTML page shows (`render.leaderboard_rows`),
so the terminal, the Markdown and the page cannot disagree.
"""

from __future__ import annotations

WIDTH = 120  # a terminal's columns the tables must fit
# Short headers for the terminal: the HTML page's long ones explain themselves in captions.
SHORT_HEADERS = {
    "speech − text": "speech − text [95% CI]",
    "timbre before → after, scored on training items (seed)": "timbre before → after (training items)",
    "timbre before → after, held-out validation": "timbre before → after (held-out)",
}


def _cell(text: str) -> str:
    return " ".join(text.split())


def _widths(header: list[str], body: list[list[str]], width: int, chrome: int) -> list[int]:
    """Column widths that fit `width`: every column its natural width when they fit, else each
    shrinks toward an equal share (the first, the model's name, keeps more)."""
    natural = [max([len(h) for h in header[i].split()] + [len(_cell(r[i])) for r in body]) for i in range(len(header))]
    room = width - chrome
    if sum(natural) <= room:
        return natural
    widths = list(natural)
    while sum(widths) > room:
        i = max(range(len(widths)), key=lambda j: widths[j] - (8 if j == 0 else 0))
        widths[i] -= 1
    return widths


def terminal_table(header: list[str], body: list[list[str]], width: int = WIDTH) -> str:
    """A boxed table whose long cells wrap onto more lines, fitting `width` columns."""
    from tabulate import tabulate

    header = [SHORT_HEADERS.get(h, h) for h in header]
    rows = [[_cell(v) for v in r] for r in body]
    widths = _widths(header, rows, width, chrome=3 * len(header) + 1)
    # tabulate pads a header by 2 beyond its text (MIN_PADDING): wrap headers that much narrower.
    return tabulate(rows, headers=header, tablefmt="simple_grid", maxcolwidths=widths,
                    maxheadercolwidths=[max(4, w - 2) for w in widths], disable_numparse=True)


def markdown_tables(header: list[str], body: list[list[str]], width: int = WIDTH) -> str:
    """A GitHub Markdown table, split by columns into several tables (each repeating the first
    column) where one line would be wider than `width`; cells are one line each."""
    from tabulate import tabulate

    rows = [[_cell(v).replace("|", "/") for v in r] for r in body]

    def render(cols: list[int]) -> str:
        keep = [0] + cols
        return tabulate([[r[i] for i in keep] for r in rows], headers=[header[i] for i in keep],
                        tablefmt="github", disable_numparse=True)

    # Columns join the current table while it fits; a column that fits nowhere stands alone.
    tables, current = [], []
    for i in range(1, len(header)):
        if current and not fits(render(current + [i]), width):
            tables.append(render(current))
            current = []
        current.append(i)
    tables.append(render(current))
    return "\n\n".join(tables) + "\n"


def fits(text: str, width: int = WIDTH) -> bool:
    """Whether every line of `text` fits `width` columns."""
    return max((len(line) for line in text.splitlines()), default=0) <= width
