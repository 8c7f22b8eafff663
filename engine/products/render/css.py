"""The review document's style sheet (inlined: the HTML loads nothing from outside)."""

CSS = """
:root{--ink:#1b1f24;--muted:#5b6570;--line:#d8dee4;--bg:#f6f8fa;--accent:#0b5cad;--danger:#b71c1c}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
background:#fff}
main{max-width:1200px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:28px;line-height:1.25;margin:0 0 8px}
h2{font-size:21px;margin:40px 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:26px 0 8px}
h4{font-size:15px;margin:0 0 6px}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;font-size:.9em}
p{margin:6px 0}
.muted{color:var(--muted)}
.small{font-size:13px}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
table:not(.plain) tbody tr:nth-child(even) td{background:#fbfcfd}
td.num{white-space:nowrap}
table.fixed{table-layout:fixed}
table.fixed td{overflow-wrap:anywhere}
td.code{white-space:nowrap}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:700;
letter-spacing:.04em;text-transform:uppercase;vertical-align:middle;border:1px solid transparent}
.status{font-size:15px;padding:4px 14px;margin-left:10px}
.status-draft{background:#fff3cd;color:#7a5200;border-color:#e0b23c}
.status-in-review{background:#dbeafe;color:#123f91;border-color:#6d9ee8}
.status-approved{background:#dcfce7;color:#14532d;border-color:#4caf6e}
.status-retired{background:#e5e7eb;color:#374151;border-color:#9ca3af}
.kind-do{background:#e6f4e7;color:#1e5b22;border-color:#9bcf9e}
.kind-do-not{background:var(--danger);color:#fff}
.kind-consider{background:#fff5d6;color:#6b4e00;border-color:#e6c35c}
.kind-info{background:#ecedf5;color:#3b3d63;border-color:#b4b7d6}
.urgency{background:#fff;color:var(--muted);border-color:var(--line)}
.urgency-immediate{color:#a11;border-color:#e7a3a3}
.urgency-urgent{color:#8a4b00;border-color:#e8c08a}
.derives{background:#e3efff;color:#1d4f91;border-color:#9dbbe6}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:14px 0;font-size:14px}
.meta dt{color:var(--muted)}
.meta dd{margin:0}
.digest{word-break:break-all}
.note-box{background:var(--bg);border-left:4px solid var(--line);padding:8px 12px;margin:10px 0}
nav.toc{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 16px;margin:18px 0}
nav.toc ol{margin:4px 0;padding-left:22px;columns:2}
.rules-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px;margin:6px 0 14px}
.rule{border:1px solid var(--line);border-left:4px solid #8fb3de;border-radius:6px;padding:7px 12px;margin:0;
font-size:14px;break-inside:avoid}
.rule h4{display:flex;justify-content:space-between;gap:10px;font-size:14px}
.rule h4 .cites{font-weight:400;white-space:nowrap}
.rule p{margin:3px 0}
.file-heading{margin:18px 0 4px;font-size:15px}
.rule.recommend{border-left-color:#6fbf73}
.rule.do-not{border-left-color:var(--danger)}
.rule .when b,.rule .then b{color:var(--muted);font-weight:600}
.rule .rationale{color:#4a535d;font-style:italic;font-size:13px}
.cites a{font-weight:600}
tr.do-not td{background:#fff1f1 !important}
tr.do-not td:first-child{border-left:4px solid var(--danger)}
.refs li{margin:8px 0}
.fig{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fff}
.fig svg{display:block;max-width:100%;height:auto}
.legend{font-size:13px;margin:6px 0}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:14px;height:10px;border:1.5px solid;border-radius:2px;margin-right:5px;
vertical-align:middle}
.threshold-fact{margin-top:22px}
@media print{main{max-width:none;padding:0}.fig{overflow:visible}nav.toc{display:none}a{color:inherit}}
"""
