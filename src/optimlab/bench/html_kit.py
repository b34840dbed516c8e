"""Pieces of the self-contained HTML report: CSS, the sortable-table script, tables, number formats, colours, and a
download link that carries its file inline (a ``data:`` URI: the report stays one file, nothing is fetched)."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from . import svg


def fmt_time(v: float | None, clock: str) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "∞"
    if clock == "T":
        return f"{v:.3g} s"
    return f"{v:,.0f}"


def fmt_bytes(n: float | None) -> str:
    if not n:
        return "0"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def score_cell(sc: Mapping[str, Any], clock: str, a: str) -> tuple[float, str]:
    c = sc["clocks"][clock]
    s = c["scores"].get(a, 0.0)
    ci = c["ci"].get(a)
    text = f"{s:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return s, text


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px;
color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;cursor:pointer;user-select:none}td.l,th.l{text-align:left}
.note{color:#666;font-size:12px}.grid{display:flex;flex-wrap:wrap;gap:8px}
svg text.pt{font-size:12px;font-weight:600}svg text.tk{font-size:10px;fill:#555}svg text.al{font-size:11px}
svg text.lg{font-size:10px}.prov{color:#a50}
.banner{background:#fff3cd;border:1px solid #e0b000;padding:8px 12px;font-weight:600}
code{font-size:12px}.tw{overflow-x:auto;max-width:100%}
"""

JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();
    var n=parseFloat(v);return isNaN(n)?v.toLowerCase():n;}
  var tables=document.querySelectorAll('table.sortable');
  for(var t=0;t<tables.length;t++){(function(table){
    var ths=table.querySelectorAll('thead th');
    for(var i=0;i<ths.length;i++){(function(th,idx){
      th.addEventListener('click',function(){
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
        rows.sort(function(a,b){var x=key(a.cells[idx]),y=key(b.cells[idx]);
          if(x===y)return 0;if(typeof x!==typeof y)return (typeof x==='number'?-1:1)*(asc?1:-1);
          return (x<y?-1:1)*(asc?1:-1);});
        for(var r=0;r<rows.length;r++)body.appendChild(rows[r]);});
    })(ths[i],i);}
  })(tables[t]);}
  document.body.setAttribute('data-ready','1');
})();
"""


def table(headers: list[str], rows: list[list[Any]], *, cls: str = "sortable", left: int = 1, tid: str = "") -> str:
    """An HTML table; cells are (text, sort_value) tuples or plain text; the first ``left`` columns left-aligned."""
    out = ['<div class="tw">', f'<table class="{cls}"' + (f' id="{tid}"' if tid else "") + "><thead><tr>"]
    for i, h in enumerate(headers):
        out.append(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>')
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            style = ""
            if isinstance(cell, tuple):
                text, sort = cell[0], cell[1]
                if len(cell) > 2 and cell[2]:
                    style = f' style="background:{cell[2]}"'
                attr = f' data-v="{escape(str(sort))}"'
            else:
                text, attr = cell, ""
            out.append(f'<td class="{"l" if i < left else ""}"{attr}{style}>{escape(str(text))}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def heat(v: float) -> str:
    """Background colour for a win rate in [0, 1] (red < 0.5 < green)."""
    v = min(1.0, max(0.0, v))
    if v >= 0.5:
        t = (v - 0.5) * 2
        r, g, b = int(255 - 120 * t), int(255 - 40 * t), int(255 - 120 * t)
    else:
        t = (0.5 - v) * 2
        r, g, b = int(255 - 20 * t), int(255 - 120 * t), int(255 - 120 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def colors(algorithms: list[str]) -> dict[str, str]:
    return {a: svg.color(i) for i, a in enumerate(algorithms)}


def fold(html: str, summary: str) -> str:
    """``html`` collapsed under a one-line ``summary`` the reader can open (long tables of a whole catalogue)."""
    return f"<details><summary>{escape(summary)}</summary>{html}</details>"


def opt_num(v: float | None, suffix: str) -> tuple[str, Any]:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ("—", "")
    return (f"{v:.3g}{suffix}", v)


def sortable(v: float | None) -> float:
    return 1e300 if v is None else v


def download_link(filename: str, content: str, mime: str, label: str) -> str:
    """An ``<a download>`` link whose file is inline (base64 ``data:`` URI)."""
    data = base64.b64encode(content.encode("utf-8")).decode("ascii")
    return f'<a download="{escape(filename)}" href="data:{mime};base64,{data}">{escape(label)}</a>'
