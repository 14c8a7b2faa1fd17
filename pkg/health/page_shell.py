"""The frame every status page shares: document head, inline CSS, header pills, the legend.

Plain server-rendered HTML with its CSS inline and no script, font or image from anywhere: it
works from a laptop through `kubectl port-forward` or on a phone over an SSH tunnel, and the
server's Content-Security-Policy forbids anything else.
"""

from __future__ import annotations

from collections.abc import Sequence

from financial.pkg.health.model import Check
from financial.pkg.health.page_format import STATUS_COLOURS, e


def document(title: str, header: str, main: str) -> str:
    """A whole page: `title` is text (escaped here); `header` and `main` are HTML."""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
{header}
</header>
<main>
{main}
</main>
<footer>
<h2>Legend</h2>
<ul class="legend">
{legend()}
</ul>
<p class="note">Each square is one run, oldest on the left. Hover a square for its tick,
duration and error; a job's page lists them all.</p>
</footer>
</body>
</html>
"""


def pills(liveness: Check, readiness: Sequence[Check]) -> tuple[str, str]:
    """The `live` / `ready` pills, and the failing readiness checks as a list (or "")."""
    ready = all(check.ok for check in readiness)
    shown = " ".join(
        [
            pill("live" if liveness.ok else "stalled", liveness.ok, liveness.detail),
            pill("ready" if ready else "not ready", ready, ""),
        ]
    )
    failing = [c for c in readiness if not c.ok]
    reasons = ""
    if failing:
        items = "".join(f"<li>{e(c.name)}: {e(c.detail)}</li>" for c in failing)
        reasons = f'\n<ul class="reasons">{items}</ul>'
    return shown, reasons


def pill(label: str, ok: bool, detail: str) -> str:
    cls = "ok" if ok else "bad"
    title = f' title="{e(detail)}"' if detail else ""
    return f'<span class="pill {cls}"{title}>{e(label)}</span>'


def badge(label: str, *, title: str | None = None, kind: str = "") -> str:
    """A small grey (or `late`: red) word beside a job's name."""
    cls = f"badge {kind}".rstrip()
    tip = f' title="{e(title)}"' if title else ""
    return f'<span class="{cls}"{tip}>{e(label)}</span>'


def legend() -> str:
    return "\n".join(
        f'<li><span class="dot s-{status.value}"></span>{status.value} ({name})</li>'
        for status, (_, name) in STATUS_COLOURS.items()
    )


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _status_css() -> str:
    return "".join(
        f".s-{status.value}{{background:{colour};fill:{colour}}}"
        for status, (colour, _) in STATUS_COLOURS.items()
    )


CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;
color:#1b1b1b;background:#f4f5f7}
header,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
h1{font-size:1.4rem;margin:1rem 0 .25rem;overflow-wrap:anywhere}
h2{font-size:1.1rem;margin:1rem 0 .5rem;overflow-wrap:anywhere}
a{color:#1a5fb4}
.summary{margin:.25rem 0 1rem;color:#444}
.pill{display:inline-block;padding:.05rem .55rem;border-radius:1rem;color:#fff;font-weight:600}
.pill.ok{background:#2e7d32}.pill.bad{background:#d32f2f}
.reasons{margin:-.5rem 0 1rem;color:#b71c1c}
.banner{background:#d32f2f;color:#fff;font-weight:600;padding:.6rem .85rem;border-radius:.5rem;
margin:0 0 1rem}
.banner a{color:#fff}
.badge{font-size:.8rem;font-weight:600;vertical-align:middle;background:#5f6368;color:#fff;
padding:.05rem .45rem;border-radius:.25rem;margin-left:.35rem;white-space:nowrap}
.badge.late{background:#d32f2f}
.card{background:#fff;border:1px solid #dfe1e5;border-radius:.5rem;padding:.85rem;margin:0 0 .85rem}
.card>h2:first-child{margin-top:0}
table{border-collapse:collapse;width:100%;background:#fff;border:1px solid #dfe1e5}
th,td{text-align:left;vertical-align:top;padding:.4rem .5rem;border-bottom:1px solid #eceef1;
overflow-wrap:anywhere}
th{color:#5f6368;font-weight:600;font-size:.9em}
tr.late td:first-child{border-left:4px solid #d32f2f}
tr.quiet{background:#fafafa;color:#5f6368}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.15rem .75rem;margin:0 0 .6rem}
dt{color:#5f6368}dd{margin:0;overflow-wrap:anywhere}
code{font-size:.95em;background:#f1f3f4;padding:0 .25rem;border-radius:.2rem}
.sub{color:#5f6368;font-size:.9em}
.strip{display:flex;flex-wrap:wrap;gap:3px;margin:.25rem 0 .4rem}
.run{display:block;width:12px;height:12px;border-radius:2px}
.run:hover,.run:focus{outline:2px solid #1b1b1b;outline-offset:1px}
.dot{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.4em;
vertical-align:baseline}
.runs{margin:.4rem 0 0;padding-left:1.3rem;font-size:.92em}
.runs li{margin:0 0 .4rem;overflow-wrap:anywhere}
.runs li:target{background:#fff8c5}
.chart{width:100%;height:auto;max-width:40rem;background:#fff;border:1px solid #dfe1e5}
.chart .line{fill:none;stroke:#5f6368;stroke-width:1}
.chart .axis{stroke:#bdc1c6;stroke-width:1}
.chart text{font-size:10px;fill:#5f6368}
.alert{color:#b71c1c}.empty{color:#5f6368}
footer{padding-bottom:1.5rem}
.legend{list-style:none;padding:0;display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin:0}
.note{color:#5f6368;font-size:.9em}
.nowrap{white-space:nowrap}
@media (max-width:40rem){
table.stack thead{display:none}
table.stack tr{display:block;border-bottom:1px solid #dfe1e5;padding:.3rem 0}
table.stack td{display:block;border:0;padding:.15rem .5rem}
table.stack td[data-label]::before{content:attr(data-label) ": ";color:#5f6368}
}
""" + _status_css()
