"""`guideline render`: the whole guideline as one document for clinical review (HTML or Markdown).

Everything shown comes from the guideline files, resolved (thresholds in canonical units); the
review model (review.py) is shown by html.py or markdown.py.
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import GuidelineInvalidError
from engine.pipeline import analyse
from engine.products.render.html import render_html
from engine.products.render.markdown import render_markdown
from engine.resources import BUNDLED_GUIDELINE

FORMATS = ("html", "markdown")


def render(path: Path | str | None = None, fmt: str = "html") -> str:
    """Render a guideline folder (None = bundled). Raises GuidelineInvalidError with every problem."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    analysis = analyse(path if path is not None else BUNDLED_GUIDELINE)
    if analysis.problems or analysis.content is None:
        raise GuidelineInvalidError(analysis.problems)
    content, digest = analysis.content, analysis.digest
    return render_html(content, digest) if fmt == "html" else render_markdown(content, digest)
