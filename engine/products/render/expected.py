"""The review document's section on what `guideline check` proves: the guidance editors expect
for whom (with the gaps they know of, in their own notes) and the codes declared never to fire
together. Shown by both formats, so a reviewer reads the known gaps beside the rules."""

from __future__ import annotations

from collections.abc import Callable

from engine.check.conflicts import conflict_pairs
from engine.model.content import Content
from engine.products.words import condition_words

TITLE = "Expected guidance and declared conflicts"
_INTRO = ("`guideline check` proves these over every possible patient, unknown values included: "
          "each patient described below gets some recommendation, and no patient gets two "
          "conflicting codes. Findings the editors keep are recorded, with their reasons, in the case files.")


def _rows(content: Content) -> list[tuple[str, str, str]]:
    return [(e.description, condition_words(e.when), " ".join(e.note.split())) for e in content.guidance_expected]


def expected_markdown(content: Content, md: Callable[[object], str]) -> list[str]:
    lines = ['<a id="expected"></a>', f"## {TITLE}", "", md(_INTRO), ""]
    for description, when, note in _rows(content):
        lines += [f"- **{md(description)}** — when {md(when)}" + (f". *Known gap: {md(note)}*" if note else "")]
    pairs = conflict_pairs(content)
    if pairs:
        lines += ["", "Never together: " + "; ".join(f"`{a}` and `{b}`" for a, b in pairs) + "."]
    if not content.guidance_expected and not pairs:
        lines += ["None declared."]
    return lines + [""]


def expected_html(content: Content, e: Callable[[object], str]) -> str:
    items = "".join(f"<li><strong>{e(d)}</strong> — when {e(w)}"
                    + (f'<br><em class="gap">Known gap: {e(n)}</em>' if n else "") + "</li>"
                    for d, w, n in _rows(content))
    pairs = conflict_pairs(content)
    never = ("<p>Never together: " + "; ".join(f"<code>{e(a)}</code> and <code>{e(b)}</code>" for a, b in pairs)
             + ".</p>") if pairs else ""
    empty = "" if items or pairs else "<p>None declared.</p>"
    return (f'<section id="expected"><h2>{e(TITLE)}</h2><p>{e(_INTRO)}</p>'
            f'{f"<ul>{items}</ul>" if items else ""}{never}{empty}</section>')
