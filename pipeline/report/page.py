"""A self-contained HTML page: inline CSS, inline SVG figures, tables; no script, no link,
no network, no timestamp (the same content gives the same bytes)."""
from __future__ import annotations

from collections.abc import Sequence
from html import escape

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;
margin:2em auto;max-width:70em;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{font-size:1.25em;border-bottom:1px solid #ddd;padding-bottom:.2em;
margin-top:2em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.6em 0;font-size:.85em}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#b00;font-weight:bold}.good{color:#070}.note{color:#555;font-size:.9em}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}
"""


def esc(text: object) -> str:
    return escape(str(text), quote=True)


def page(title: str, body: Sequence[str]) -> str:
    """The whole document."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{esc(title)}</title>\n<style>\n{_CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def table(header: Sequence[str], rows: Sequence[Sequence[object]],
          numeric: Sequence[int] = (), classes: Sequence[str | None] | None = None) -> str:
    """An HTML table; cells are escaped; `numeric` column indices are right-aligned;
    `classes` gives each row an optional CSS class."""
    out = ["<table>", "<tr>" + "".join(f"<th>{esc(h)}</th>" for h in header) + "</tr>"]
    for i, row in enumerate(rows):
        cls = classes[i] if classes else None
        attr = f' class="{cls}"' if cls else ""
        cells = "".join(f'<td class="num">{esc(c)}</td>' if j in numeric else f"<td>{esc(c)}</td>"
                        for j, c in enumerate(row))
        out.append(f"<tr{attr}>{cells}</tr>")
    out.append("</table>")
    return "\n".join(out)


def figure(svg: str, caption: str) -> str:
    return f"<figure>\n{svg}\n<figcaption class=\"note\">{esc(caption)}</figcaption>\n</figure>"


def num(x: float | None, fmt: str = ".4g") -> str:
    return "-" if x is None else format(x, fmt)
