"""The status page: the overview at `/` (`overview.py`) and a page per job (`job_page.py`).

This module gathers the names the server and tests import; the views live by concern:
`page_format.py` (escaping, times, run facts), `page_shell.py` (frame, CSS, legend),
`overview.py`, `job_page.py` and `duration_chart.py`. Every value from a job, a run or an error
is escaped.
"""

from __future__ import annotations

from financial.pkg.health.duration_chart import duration_chart
from financial.pkg.health.job_page import JobReport, render_job_page
from financial.pkg.health.overview import StatusReport, display_order, job_href, render_overview
from financial.pkg.health.page_format import STATUS_COLOURS

render_status_page = render_overview
"""The overview page (the name the server used before the per-job pages)."""

__all__ = [
    "STATUS_COLOURS",
    "JobReport",
    "StatusReport",
    "display_order",
    "duration_chart",
    "job_href",
    "render_job_page",
    "render_overview",
    "render_status_page",
]
