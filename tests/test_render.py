"""`guideline render`: one self-contained HTML document (and its Markdown twin) for clinical review.

Structure tests read the HTML with html.parser; the browser test opens it in Debian's headless
Chromium, offline, and checks the screenshot is a real, non-blank page and the DOM has every rule.
"""

from __future__ import annotations

import html
import io
import re
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
from conftest import replace_once

import engine
from engine import cli
from engine.model.content import atoms
from engine.pipeline import analyse
from engine.products.render.document import render
from engine.products.render.graph import build_graph
from engine.products.render.layout import WAYPOINT, layout

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars"]
WIDTH, HEIGHT = 1280, 4000


class Page(HTMLParser):
    """Collects ids, links, resource references and SVG nodes; records any structural error."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.ids: list[str] = []
        self.refs: list[tuple[str, str, str]] = []       # (tag, attribute, value)
        self.svg_nodes: set[str] = set()
        self.tags: set[str] = set()
        self.svg_depth = 0
        self.text: list[str] = []

    def _attrs(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        for name, value in attrs:
            value = value or ""
            if name == "id":
                self.ids.append(value)
            if name in ("href", "src", "xlink:href", "action", "srcset", "poster", "data"):
                self.refs.append((tag, name, value))
            if name == "data-node" and self.svg_depth:
                self.svg_nodes.add(value)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            self.svg_depth += 1
        self._attrs(tag, attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._attrs(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}> "
                               f"at {self.getpos()}")
            return
        self.stack.pop()
        if tag == "svg":
            self.svg_depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(document: str) -> Page:
    page = Page()
    page.feed(document)
    page.close()
    return page


@pytest.fixture(scope="module")
def html_doc() -> str:
    return render(None, "html")


@pytest.fixture(scope="module")
def page(html_doc: str) -> Page:
    return parse(html_doc)


@pytest.fixture(scope="module")
def markdown_doc() -> str:
    return render(None, "markdown")


def section(document: str, anchor: str) -> str:
    start = document.index(f'<section id="{anchor}">')
    return document[start:document.index("</section>", start)]


# --- what the document contains ------------------------------------------------------------------

def test_html_is_well_formed(page: Page) -> None:
    assert page.errors == []
    assert page.stack == []
    duplicates = {i for i in page.ids if page.ids.count(i) > 1}
    assert duplicates == set()


def test_every_in_page_link_has_a_target(page: Page) -> None:
    targets = set(page.ids)
    broken = [v for _, _, v in page.refs if v.startswith("#") and v[1:] not in targets]
    assert broken == []


def test_no_external_resources(page: Page, html_doc: str) -> None:
    outside = [(t, a, v) for t, a, v in page.refs if not v.startswith("#")]
    assert outside == []
    assert not page.tags & {"script", "link", "img", "iframe", "object", "embed", "base", "form"}
    assert "@import" not in html_doc and "url(" not in html_doc
    assert "<style>" in html_doc and "<svg" in html_doc  # CSS and diagram inline


def test_metadata(page: Page, html_doc: str, guideline: engine.Guideline) -> None:
    meta = guideline.content.metadata
    header = html_doc[:html_doc.index('<section id="references">')]
    for text in (meta.title, meta.id, meta.version, meta.effective_date or "", guideline.digest):
        assert text in header
    assert re.search(rf'class="badge status status-{meta.status}" data-status="{meta.status}"', header)
    for person in meta.owners:
        assert person["name"] in header


def test_every_reference_numbered_with_its_note(html_doc: str, guideline: engine.Guideline) -> None:
    refs = section(html_doc, "references")
    for ref in guideline.content.references.values():
        item = re.search(rf'<li id="ref-{ref.id}" value="{ref.id}">(.*?)</li>', refs, re.S)
        assert item, ref.id
        text = re.sub(r"<[^>]+>", "", item.group(1))
        assert " ".join(ref.citation.split()) in " ".join(text.split()).replace("&amp;", "&")
        note = f'<br><span class="small muted">{html.escape(ref.note)}</span>'
        assert (note in item.group(1)) == bool(ref.note), ref.id


def test_every_rule_with_words_citations_and_rationale(html_doc: str, guideline: engine.Guideline) -> None:
    rules = section(html_doc, "rules")
    derived_part, recommend_part = rules.split('id="recommendation-rules"')
    for rule in guideline.content.rules:
        card = re.search(rf'<article class="rule [^"]*" id="rule-{rule.id}">(.*?)</article>', rules, re.S)
        assert card, rule.id
        body = card.group(1)
        assert "<b>When</b>" in body
        assert f"<code>{rule.id}</code> · {html.escape(rule.title)}</span>" in body
        for ref in rule.citations:
            assert f'<a href="#ref-{ref}">[{ref}]</a>' in body
        if rule.recommend:
            assert f'<b>then recommend</b> <a href="#code-{rule.recommend}">' in body
            title = html.escape(guideline.content.catalogue[rule.recommend].title)
            assert re.search(rf'<p class="then"><b>then recommend</b> .*? — {re.escape(title)}</p>', body), rule.id
            assert f'id="rule-{rule.id}"' in recommend_part
        else:
            assert f'<b>then</b> <a href="#derived-{rule.derive}">' in body
            assert f'id="rule-{rule.id}"' in derived_part
        rationale = f'<p class="rationale">{html.escape(rule.rationale)}</p>'
        assert (rationale in body) == bool(rule.rationale), rule.id


def test_rules_grouped_by_file(html_doc: str) -> None:
    rules = section(html_doc, "rules")
    for file in sorted(p.name for p in (engine.BUNDLED_GUIDELINE / "rules").glob("*.yaml")):
        assert f"<code>rules/{file}</code>" in rules


def test_catalogue_codes_kinds_and_readers(html_doc: str, guideline: engine.Guideline) -> None:
    catalogue = section(html_doc, "catalogue")
    for code, rec in guideline.content.catalogue.items():
        row = re.search(rf'<tr id="code-{code}"( class="do-not")?>(.*?)</tr>', catalogue, re.S)
        assert row, code
        assert (row.group(1) is not None) == (rec.kind == "do-not")  # do-not rows are marked
        assert f"kind-{rec.kind}" in row.group(2) and rec.urgency in row.group(2)
        for rule in guideline.content.rules:
            if rule.recommend == code:
                assert f'href="#rule-{rule.id}"' in row.group(2)
    assert catalogue.count('class="do-not"') == sum(r.kind == "do-not" for r in guideline.content.catalogue.values())


def test_mascc_table(html_doc: str, guideline: engine.Guideline) -> None:
    scores = section(html_doc, "scores")
    for score in guideline.content.scores:
        assert f'id="score-{score.id}"' in scores
        for item in score.items:
            assert item.id in scores
            assert item.title.split("(")[0].strip() in scores
        # the risk rules that read the total
        for rule in guideline.content.rules:
            if any(a.fact == score.fact for a in atoms(rule.when)):
                assert f'href="#rule-{rule.id}"' in scores
    assert "maximum 26 points" in scores


def test_anc_thresholds_come_out_in_order(html_doc: str) -> None:
    """The neutropenia grades table falls out of the thresholds of every rule reading anc."""
    start = html_doc.index('id="thresholds-anc"')
    anc = html_doc[start:html_doc.index("</table>", start)]
    order = ["profound-neutropenia", "neutropenia-grade-severe", "neutropenia-grade-moderate",
             "drug-hold-offending-agent", "tki-resume", "neutropenia-grade-mild", "afebrile-cause-evaluation",
             "neutropenia-grade-none"]
    positions = [anc.index(f'href="#rule-{rule}"') for rule in order]
    assert positions == sorted(positions)
    for rule in ("febrile-neutropenia", "gcsf-consider", "masked-infection-signs", "prophylaxis-indicated"):
        assert f'href="#rule-{rule}"' in anc
    thresholds = section(html_doc, "thresholds")
    assert 'id="thresholds-age"' in thresholds and "mascc: age-under-60" in thresholds  # score items too
    assert 'id="thresholds-mascc_score"' in thresholds


def test_facts_dictionary(html_doc: str, guideline: engine.Guideline) -> None:
    facts = section(html_doc, "facts")
    for name, spec in guideline.content.facts.items():
        row = re.search(rf'<tr id="fact-{name}">(.*?)</tr>', facts, re.S)
        assert row, name
        for code in spec.loinc:
            assert code in row.group(1)
        for unit, _ in spec.units:
            assert unit in row.group(1)
    for name in guideline.content.derived:
        assert f'<tr id="derived-{name}">' in facts
    assert "[degF]: (value − 32) × 5/9" in facts
    assert "/uL: × 1/1000" in facts


def test_traceability(html_doc: str, guideline: engine.Guideline) -> None:
    trace = section(html_doc, "traceability")
    assert trace.count('<tr id="statement-') == len(guideline.content.traceability)
    for statement in guideline.content.traceability:
        for rule in statement["rules"]:
            assert f'href="#rule-{rule}"' in trace


def test_diagram_has_a_node_per_fact_and_code(page: Page, guideline: engine.Guideline) -> None:
    c = guideline.content
    expected = ({f"input:{n}" for n in c.facts} | {f"derived:{n}" for n in c.derived}
                | {f"code:{code}" for code in c.catalogue})
    assert expected <= page.svg_nodes


def test_diagram_flows_left_to_right_without_overlaps(guideline: engine.Guideline) -> None:
    graph = build_graph(guideline.content)
    drawn = layout(graph)
    assert graph.edges
    for source, target, chain in drawn.paths:
        xs = [n.x for n in chain]
        assert xs == sorted(xs) and len(set(xs)) == len(xs), (source, target)
        assert all(n.kind == WAYPOINT for n in chain[1:-1])  # long edges go round boxes, not behind them
    for col in drawn.columns:
        boxes = sorted(col, key=lambda n: n.y)
        for upper, lower in zip(boxes, boxes[1:], strict=False):
            assert upper.y + upper.height <= lower.y + 0.01, (upper.key, lower.key)
        assert all(0 <= n.y and n.y + n.height <= drawn.height for n in col)
        assert all(n.x + n.width <= drawn.width for n in col)
    derived = {n.name: n.column for n in graph.nodes.values() if n.kind == "derived"}
    assert derived["anc"] < derived["febrile_neutropenia"] < derived["mascc_score"] < derived["fn_risk"]


def test_markdown_has_the_same_rules_codes_references_and_facts(markdown_doc: str, html_doc: str,
                                                                guideline: engine.Guideline) -> None:
    c = guideline.content
    for rule in c.rules:
        assert f'<a id="rule-{rule.id}"></a>**`{rule.id}`**' in markdown_doc
    for code in c.catalogue:
        assert f'<a id="code-{code}"></a>`{code}`' in markdown_doc
    for ref in c.references:
        assert f'<a id="ref-{ref}"></a>' in markdown_doc
    for name in c.facts:
        assert f'<a id="fact-{name}"></a>`{name}`' in markdown_doc
    for item in c.scores[0].items:
        assert item.title.split("(")[0].strip() in markdown_doc
    assert guideline.digest in markdown_doc
    anchors = set(re.findall(r'<a id="([^"]+)"></a>', markdown_doc))
    links = set(re.findall(r"\]\(#([^)]+)\)", markdown_doc))
    assert links <= anchors
    assert "http://" not in markdown_doc and "https://" not in markdown_doc
    # the same rules in the same order in both formats
    assert re.findall(r'id="rule-([a-z0-9-]+)"', markdown_doc) == re.findall(r'id="rule-([a-z0-9-]+)"', html_doc)


# --- the command ---------------------------------------------------------------------------------

def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(list(argv), out=out, err=err, stdin=io.StringIO())
    return code, out.getvalue(), err.getvalue()


def test_cli_renders_html_to_stdout_and_markdown_to_a_file(tmp_path: Path, html_doc: str) -> None:
    code, out, err = run_cli("render")
    assert (code, err) == (0, "")
    assert out == html_doc and out.startswith("<!DOCTYPE html>")
    target = tmp_path / "guideline.md"
    code, out, err = run_cli("render", str(engine.BUNDLED_GUIDELINE), "--format", "markdown", "-o", str(target))
    assert (code, out, err) == (0, "", "")
    assert target.read_text(encoding="utf-8").startswith('<a id="metadata"></a>\n# ')


def test_cli_unwritable_output_exits_2(tmp_path: Path) -> None:
    code, _, err = run_cli("render", "-o", str(tmp_path / "missing" / "x.html"))
    assert code == 2 and "cannot write" in err


def test_invalid_guideline_exits_2_with_located_problems(bundled_copy: Path, locate) -> None:
    path = replace_once(bundled_copy / "rules" / "antibiotics.yaml", "{fact: pneumonia, is: true}",
                        "{fact: pneumonai, is: true}")
    line, col = locate(path, "pneumonai")
    code, out, err = run_cli("render", str(bundled_copy))
    assert code == 2 and out == ""
    assert re.search(rf"antibiotics\.yaml:{line}:\d+: unknown-fact: unknown fact 'pneumonai'", err), err
    assert col > 0


def test_a_modified_copy_shows_its_change(bundled_copy: Path, html_doc: str) -> None:
    replace_once(bundled_copy / "rules" / "supportive-care.yaml", "{fact: hemoglobin, lt: 7.0, unit: g/dL}",
                 "{fact: hemoglobin, lt: 8.0, unit: g/dL}")
    replace_once(bundled_copy / "catalogue.yaml", "title: Transfuse red cells",
                 'title: "Transfuse <b>red</b> cells & keep Hb > 8"')
    changed = render(bundled_copy, "html")
    assert "hemoglobin &lt; 8.0" in changed and "hemoglobin &lt; 7.0" not in changed
    assert "hemoglobin &lt; 7.0" in html_doc
    assert "Transfuse &lt;b&gt;red&lt;/b&gt; cells &amp; keep Hb &gt; 8" in changed and "<b>red</b>" not in changed
    assert analyse(bundled_copy).digest in changed and analyse(bundled_copy).digest not in html_doc  # a new digest
    assert parse(changed).errors == []
    markdown = render(bundled_copy, "markdown")
    assert "hemoglobin < 8.0" in markdown and "Transfuse \\<b>red\\</b> cells & keep Hb > 8" in markdown


def test_unread_inputs_are_grouped_in_the_diagram(bundled_copy: Path) -> None:
    replace_once(bundled_copy / "facts.yaml", "  pain:\n", "  smoker:\n    type: boolean\n"
                 "    description: Smokes tobacco.\n  pain:\n")
    page = parse(render(bundled_copy, "html"))
    assert "input:smoker" in page.svg_nodes
    assert any("input facts no rule reads (1)" in t for t in page.text)


# --- in a real browser -----------------------------------------------------------------------------

def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB(A) bytes) of an 8-bit, non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    width = height = channels = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert (depth, interlace) == (8, 0) and colour in (2, 6), (depth, colour, interlace)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
    raw = zlib.decompress(idat)
    stride = width * channels
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                corner = previous[i - channels] if i >= channels else 0
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 255
        rows.append(bytes(line))
        previous = line
    return width, height, [bytes(r[i:i + 3] for i in range(0, stride, channels)) for r in rows] \
        if channels == 4 else rows


def run_chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.iterdir()))}"
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed; "
                                              "install it with: apt-get install -y chromium")
def test_browser_renders_a_readable_page_offline(tmp_path: Path, guideline: engine.Guideline) -> None:
    document = tmp_path / "guideline.html"
    assert cli.main(["render", "-o", str(document)]) == 0
    shot = tmp_path / "guideline.png"
    done = run_chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WIDTH},{HEIGHT}", document.as_uri())
    assert shot.exists(), done.stderr[-2000:]

    width, height, rows = png_pixels(shot)
    assert (width, height) == (WIDTH, HEIGHT)
    pixels = b"".join(rows)
    white = b"\xff\xff\xff"
    non_white = sum(1 for i in range(0, len(pixels), 3) if pixels[i:i + 3] != white)
    colours = {pixels[i:i + 3] for i in range(0, len(pixels), 3 * 7)}
    assert non_white > 0.03 * width * height, non_white   # text, tables and badges, not an empty page
    assert len(colours) > 50, len(colours)                   # anti-aliased text and coloured badges
    bands = [sum(1 for row in rows[y:y + 500] if row != white * width) for y in range(0, height, 500)]
    assert all(b > 20 for b in bands), bands                 # content all the way down the page

    dom = run_chromium(tmp_path, "--dump-dom", document.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = set(re.findall(r'id="rule-([a-z0-9-]+)"', dom.stdout))
    assert seen == {r.id for r in guideline.content.rules}
    assert guideline.digest in dom.stdout
