"""Tables of figures as Markdown and CSV (one row per case, plus a mean row)."""

from __future__ import annotations

import csv
import io
import math

__all__ = ["mean_row", "markdown_table", "csv_text", "write_tables"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def mean_row(rows: list[dict], *, label_key: str = "case", label: str = "mean") -> dict:
    """Mean of every numeric column over ``rows`` (NaN and inf ignored; a column with none left is NaN)."""
    out = {label_key: label}
    for key in columns(rows):
        if key == label_key:
            continue
        vals = [float(r[key]) for r in rows if _is_number(r.get(key)) and math.isfinite(float(r[key]))]
        if any(_is_number(r.get(key)) for r in rows):
            out[key] = sum(vals) / len(vals) if vals else float("nan")
    return out


def columns(rows: list[dict]) -> list[str]:
    """Union of the keys of ``rows``, in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key, None)
    return list(seen)


def _fmt(value, digits: int) -> str:
    if value is None:
        return ""
    if _is_number(value):
        if isinstance(value, int):
            return str(value)
        return "n/a" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def markdown_table(rows: list[dict], *, digits: int = 3, cols: list[str] | None = None) -> str:
    """A GitHub Markdown table of ``rows`` (dicts); missing cells are blank."""
    cols = cols or columns(rows)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c), digits) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def csv_text(rows: list[dict], *, cols: list[str] | None = None) -> str:
    """CSV of ``rows`` with a header (full precision)."""
    cols = cols or columns(rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in cols})
    return buffer.getvalue()


def write_tables(rows: list[dict], directory, *, stem: str = "evaluation", title: str | None = None,
                 digits: int = 3, overwrite: bool = False, option: str = "directory") -> dict:
    """Write ``DIR/<stem>.md`` and ``DIR/<stem>.csv`` together (both or neither); returns their paths.

    Existing tables are refused unless ``overwrite`` (``option`` names the folder in messages).
    """
    from ..atomic import write_files_atomically

    md = (f"# {title}\n\n" if title else "") + markdown_table(rows, digits=digits)
    text = csv_text(rows)
    written = write_files_atomically(directory, {
        f"{stem}.md": lambda p: p.write_bytes(md.encode()),
        f"{stem}.csv": lambda p: p.write_bytes(text.encode())}, overwrite=overwrite, option=option)
    return {"markdown": written[f"{stem}.md"], "csv": written[f"{stem}.csv"]}
