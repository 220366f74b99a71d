"""The report as ONE self-contained HTML page.

No request leaves the page: styles and script are inline (a Content-Security-Policy allows
exactly them, by hash, and nothing else), charts are inline SVG with their numbers in a table
beside them, the favicon is empty. Every value is escaped here: domain names and evidence come
from DNS, i.e. from anyone. Sections 1-4 and 6 are plain HTML (they print and read without
script); the domain table (section 5) is built by the inline script from the page's own
gzip-compressed data block, a page of rows at a time, so that 16,500 domains with all their
evidence stay a few megabytes and open quickly, and is filtered in the page.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from .. import __version__
from ..figures import CHANGE_KINDS, counts, share, shares as shares_of, status
from . import Report, home_words, iso, method, no_providers, source_words, when

CHANGES_LISTED = 1000  # the newest; the counts include all
GZIP_LEVEL = 4  # against 6: about half the time for a tenth more bytes

STYLE = """
:root{--fg:#1f2937;--muted:#4b5563;--line:#d1d5db;--bg:#fff;--soft:#f3f4f6;--foreign:#b42318;--home:#0f766e;--none:#e5e7eb;--unk:#9ca3af;--accent:#1d4ed8}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%}
body{margin:0;color:var(--fg);background:var(--bg);font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif}
header.top,main,footer{max-width:72rem;margin:0 auto;padding:0 1rem}
header.top{padding-top:1.5rem;border-bottom:1px solid var(--line)}
.kicker{margin:0;color:var(--muted);text-transform:uppercase;letter-spacing:.08em;font-size:.8rem}
h1{margin:.2rem 0 .4rem;font-size:clamp(1.5rem,4vw,2.2rem);line-height:1.2}
h2{margin:2.2rem 0 .6rem;font-size:1.45rem;border-bottom:2px solid var(--fg);padding-bottom:.2rem}
h3{margin:1.6rem 0 .4rem;font-size:1.1rem}
.meta{color:var(--muted);margin:.2rem 0 .8rem}
nav ol{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem;padding:0;margin:.6rem 0 1rem;list-style:none}
nav a{color:var(--accent)}
a{color:var(--accent)}
.lead{font-size:clamp(1.1rem,2.6vw,1.4rem);line-height:1.4;margin:1rem 0}
.big{display:block;font-size:clamp(2.6rem,9vw,4.2rem);font-weight:700;line-height:1;color:var(--foreign);margin-bottom:.3rem}
.note{color:var(--muted);font-size:.92rem}
.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(12rem,1fr));gap:.6rem;list-style:none;padding:0;margin:1rem 0}
.stats li{border:1px solid var(--line);border-left:6px solid var(--unk);border-radius:.4rem;padding:.5rem .7rem;line-height:1.3}
.stats li.s-f{border-left-color:var(--foreign)}.stats li.s-c{border-left-color:var(--home)}.stats li.s-i{border-left-color:#b45309}
.stats strong{display:block;font-size:1.5rem}.stats span{display:block;color:var(--muted);font-size:.9rem}
figure{margin:1rem 0 .4rem}
.legend{margin:.1rem 0 .3rem}
figcaption{font-weight:600;margin-bottom:.3rem}
svg.chart{width:100%;height:auto;max-width:36rem;display:block}
svg.chart text{font:15px system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--fg)}
.c-f{fill:var(--foreign)}.c-h{fill:var(--home)}.c-n{fill:var(--none)}.c-u{fill:var(--unk)}
.legend{display:flex;flex-wrap:wrap;gap:.2rem 1rem;margin:.2rem 0 .6rem;padding:0;list-style:none;font-size:.9rem}
.legend li::before{content:"";display:inline-block;width:.8em;height:.8em;margin-right:.35em;vertical-align:-.05em;border:1px solid #6b7280}
.legend .k-foreign::before{background:var(--foreign)}.legend .k-home::before{background:var(--home)}.legend .k-none::before{background:var(--none)}.legend .k-unk::before{background:var(--unk)}
.wrap{overflow-x:auto;margin:.4rem 0 1rem}
table{border-collapse:collapse;width:100%;font-size:.93rem}
caption{text-align:left;font-weight:600;padding:.3rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
thead th{border-bottom:2px solid var(--fg);vertical-align:bottom}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}td.n{white-space:nowrap}
.fg{color:var(--foreign);font-weight:600}
.tag{display:inline-block;font-size:.78rem;font-weight:600;padding:0 .4rem;border-radius:.6rem;border:1px solid currentColor;white-space:nowrap;margin-left:.3rem}
.tag.f{color:var(--foreign)}.tag.c{color:var(--home)}.tag.u,.tag.i{color:#92400e}
.controls{display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:end;margin:.6rem 0;padding:.7rem;background:var(--soft);border-radius:.4rem}
.controls label{display:flex;flex-direction:column;font-size:.85rem;font-weight:600;gap:.15rem}
.controls input,.controls select,button{font:inherit;padding:.35rem .5rem;border:1px solid #9ca3af;border-radius:.3rem;background:#fff;color:var(--fg)}
.controls input{min-width:16rem}
button{cursor:pointer}
#count{margin:.3rem 0;font-weight:600}
#domains tbody tr.dom th{background:var(--soft);border-top:2px solid var(--line);font-weight:400}
#domains .dn{font-weight:700;word-break:break-all}
#domains .lbl{color:var(--muted);font-size:.85rem;margin-left:.5rem}
#domains td.ev{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.82rem;word-break:break-word}
#domains tr.err td{color:#92400e;font-size:.88rem}
#more{margin:.6rem .6rem .6rem 0}
dl.facts{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}
dl.facts dt{font-weight:600}dl.facts dd{margin:0}
footer{margin-top:3rem;padding:1rem;border-top:1px solid var(--line);color:var(--muted);font-size:.9rem}
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}
@media (max-width:40rem){
 body{font-size:15px}
 th,td{padding:.25rem .3rem}
 .stats{grid-template-columns:1fr 1fr}.stats li{padding:.4rem .5rem}.stats strong{font-size:1.25rem}
 .controls input{min-width:0;width:100%}.controls label{flex:1 1 100%}
 #domains thead{position:absolute;left:-9999px}
 #domains tr{display:block;border-bottom:1px solid var(--line)}
 #domains tr.dom th{display:block}
 #domains td{display:block;border:0;padding:.1rem .5rem}
 #domains td[data-l]::before{content:attr(data-l) ": ";font-weight:600;font-family:system-ui,sans-serif}
}
@media print{
 body{font-size:11pt}
 nav,.controls,#more,#all,noscript{display:none}
 header.top,main,footer{max-width:none;padding:0}
 h2{break-after:avoid}
 figure,tr{break-inside:avoid}
 .wrap{overflow:visible}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
 a{color:inherit;text-decoration:none}
}
"""

# The domain table: data from the page's own gzip block, a page of domains at a time, filtered
# in place. textContent only: no value from the data is ever parsed as HTML.
SCRIPT = """
(function(){
"use strict";
var PAGE=100,COLS=["Category","Role","Provider","Ultimate parent","Jurisdiction","Confidence","Evidence"];
var STATUS={f:["foreign","f"],c:["no foreign dependency","c"],u:["unknown","u"]};
var table=document.getElementById("domains"),count=document.getElementById("count");
var q=document.getElementById("q"),st=document.getElementById("st"),cat=document.getElementById("cat");
var more=document.getElementById("more"),all=document.getElementById("all");
var data,matches=[],shown=0,texts=null;
function el(tag,text,cls){var e=document.createElement(tag);if(text!==undefined&&text!==null)e.textContent=text;if(cls)e.className=cls;return e}
function cell(tr,label,text,cls){var td=el("td",text,cls);td.setAttribute("data-l",label);tr.appendChild(td);return td}
function body(d){
 var tb=document.createElement("tbody"),head=el("tr",null,"dom"),th=el("th");
 th.colSpan=COLS.length;th.scope="rowgroup";th.appendChild(el("span",d[0],"dn"));
 var s=STATUS[d[1]];th.appendChild(el("span",s[0],"tag "+s[1]));
 if(d[2])th.appendChild(el("span","incomplete","tag i"));
 var labels=Object.keys(d[3]).map(function(k){return k+"="+d[3][k]}).join(" ");
 if(labels)th.appendChild(el("span",labels,"lbl"));
 head.appendChild(th);tb.appendChild(head);
 d[4].forEach(function(x){
  var p=data.p[x[2]],tr=el("tr");
  cell(tr,COLS[0],x[0]);cell(tr,COLS[1],x[1]);
  var pc=cell(tr,COLS[2],p[1]);if(p[1]!==p[0])pc.appendChild(el("span"," ("+p[0]+")","lbl"));
  cell(tr,COLS[3],p[2]||"unknown");
  var j=cell(tr,COLS[4],p[3]||"unknown");if(p[4]){j.className="fg";j.appendChild(el("span","foreign","tag f"))}
  cell(tr,COLS[5],x[3]+(x[4]?"":" (not counted)"));
  var ev=cell(tr,COLS[6],null,"ev");x[5].forEach(function(line,i){if(i)ev.appendChild(el("br"));ev.appendChild(document.createTextNode(line))});
  tb.appendChild(tr);
 });
 if(!d[4].length){var tr=el("tr");var td=cell(tr,COLS[2],"No dependency found"+(d[2]?" (the scan was incomplete)":""));td.colSpan=COLS.length;tb.appendChild(tr)}
 if(d[2]){var er=el("tr",null,"err");var td2=cell(er,"Errors","Incomplete: "+d[5].join("; "));td2.colSpan=COLS.length;er.appendChild(td2);tb.appendChild(er)}
 return tb;
}
function fmt(n){return n.toLocaleString("en-GB")}
function render(upto){
 for(;shown<Math.min(upto,matches.length);shown++)table.appendChild(body(data.d[matches[shown]]));
 count.textContent="Showing "+fmt(shown)+" of "+fmt(matches.length)+" matching domains ("+fmt(data.d.length)+" in all).";
 more.hidden=all.hidden=shown>=matches.length;
 all.textContent="Show all "+fmt(matches.length);
}
function text(d){
 var parts=[d[0],d[1]==="f"?"foreign":d[1]==="c"?"clean":"unknown",d[2]?"incomplete":""];
 Object.keys(d[3]).forEach(function(k){parts.push(k+"="+d[3][k])});
 d[4].forEach(function(x){var p=data.p[x[2]];parts.push(x[0],x[1],x[3],p[0],p[1],p[2],p[3],x[5].join(" "))});
 parts.push(d[5].join(" "));
 return parts.join(" ").toLowerCase();
}
function apply(){
 var words=q.value.toLowerCase().split(/\\s+/).filter(Boolean),s=st.value,c=cat.value;
 if(words.length&&!texts)texts=data.d.map(text);
 matches=[];
 data.d.forEach(function(d,i){
  if(s==="i"?!d[2]:s&&d[1]!==s)return;
  if(c&&!d[4].some(function(x){return x[0]===c&&x[4]&&(s!=="f"||data.p[x[2]][4])}))return;
  for(var w=0;w<words.length;w++)if(texts[i].indexOf(words[w])<0)return;
  matches.push(i);
 });
 Array.prototype.slice.call(table.tBodies).forEach(function(tb){tb.remove()});
 shown=0;render(PAGE);
}
var timer;
function later(){clearTimeout(timer);timer=setTimeout(apply,120)}
var block=document.getElementById("domain-data").textContent.replace(/\\s+/g,"");
var raw=atob(block),bytes=new Uint8Array(raw.length);
for(var i=0;i<raw.length;i++)bytes[i]=raw.charCodeAt(i);
new Response(new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"))).text().then(function(json){
 data=JSON.parse(json);
 data.cats.forEach(function(c){var o=el("option",c);o.value=c;cat.appendChild(o)});
 q.addEventListener("input",later);st.addEventListener("change",apply);cat.addEventListener("change",apply);
 more.addEventListener("click",function(){render(shown+PAGE)});
 all.addEventListener("click",function(){render(matches.length)});
 document.getElementById("controls").hidden=false;
 apply();
 table.setAttribute("aria-busy","false");
});
})();
"""


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


# Only the page's own style and script run; nothing may be fetched (the icon is an inline empty one).
CSP = f"default-src 'none'; style-src {_sha256(STYLE)}; script-src {_sha256(SCRIPT)}; img-src data:; base-uri 'none'; form-action 'none'"


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}\u00a0%"


# ---- charts -------------------------------------------------------------------------------

LABEL_W, BAR_W, RIGHT_W, ROW_H = 130, 290, 120, 26  # narrow: the text stays legible on a phone


def _chart(ident: str, title: str, rows: Sequence[tuple[str, Sequence[tuple[float, str]], str]], total: float | None) -> str:
    """Horizontal bars: per row a label, segments (value, css class) scaled so that `total`
    (None: each row's own sum) fills the bar area, and a text after the bar. The numbers are
    in the table next to it."""
    height = ROW_H * len(rows) + 6
    out = [f'<svg class="chart" role="img" aria-labelledby="{ident}-t" viewBox="0 0 {LABEL_W + BAR_W + RIGHT_W} {height}" '
           f'xmlns="http://www.w3.org/2000/svg"><title id="{ident}-t">{_e(title)}</title>']
    for i, (label, segments, note) in enumerate(rows):
        y = 3 + i * ROW_H
        shown = label if len(label) <= 15 else label[:14] + "…"
        out.append(f'<text x="{LABEL_W - 6}" y="{y + 18}" text-anchor="end">{_e(shown)}</text>')
        x = float(LABEL_W)
        whole = sum(v for v, _ in segments) if total is None else total
        for value, css in segments:
            width = BAR_W * value / whole if whole else 0
            if width > 0:
                out.append(f'<rect class="{css}" x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="{ROW_H - 8}"/>')
            x += width
        out.append(f'<text x="{x + 5:.1f}" y="{y + 18}">{_e(note)}</text>')
    out.append("</svg>")
    return "".join(out)


def _legend(items: Iterable[tuple[str, str]]) -> str:
    return '<ul class="legend">' + "".join(f'<li class="k-{key}">{_e(text)}</li>' for key, text in items) + "</ul>"


def _table(caption: str, head: Sequence[str], rows: Iterable[Sequence[str]], numeric: Iterable[int] = ()) -> str:
    """A table whose cells are already escaped; `numeric` columns align right."""
    nums = set(numeric)
    out = ['<div class="wrap"><table>', f"<caption>{_e(caption)}</caption><thead><tr>"]
    out.extend(f'<th scope="col"{" class=n" if i in nums else ""}>{_e(h)}</th>' for i, h in enumerate(head))
    out.append("</tr></thead><tbody>")
    for row in rows:
        cells = [f'<th scope="row">{row[0]}</th>'] + [f'<td{" class=n" if i in nums else ""}>{c}</td>' for i, c in enumerate(row) if i]
        out.append("<tr>" + "".join(cells) + "</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


# ---- sections -----------------------------------------------------------------------------


def _headline(report: Report) -> str:
    fig, sh = report.figures, report.shares
    n = fig["targets"]
    home = _e(home_words(report.home))
    out = ['<section id="headline" aria-labelledby="h-headline"><h2 id="h-headline">1. The headline</h2>']
    out.append(
        f'<p class="lead"><span class="big" data-figure="share-foreign">{_pct(sh["foreign"])}</span>'
        f'<strong data-figure="foreign">{_n(fig["foreign"])}</strong> of <strong data-figure="targets">{_n(n)}</strong> domains '
        f'(<span data-figure="share">{_pct(sh["foreign"])}</span>) depend on at least one provider whose ultimate parent falls outside {home}.</p>'
    )
    out.append('<ul class="stats">' + "".join(
        f'<li class="s-{css}"><strong data-figure="{key}">{_n(fig[key])}</strong> {_e(words)}<span>{_pct(sh[key])}</span></li>'
        for key, css, words in (("foreign", "f", "with a foreign dependency"), ("clean", "c", "without one, as far as DNS shows"),
                                ("unknown", "u", "unknown: incomplete, nothing foreign found"), ("incomplete", "i", "incomplete in all (errors in the scan)"))
    ) + "</ul>")
    out.append(
        '<p class="note">A domain whose scan had errors is never counted as clean. '
        + ("Inferred dependencies (concluded from another service) are counted." if report.count_inferred else
           "Inferred dependencies (concluded from another service) are listed but not counted.") + "</p>"
    )
    for key, title, noun in (("categories", "Per category", "Category"), ("roles", "Per role", "Role")):
        table = fig[key]
        if not table:
            continue
        per = sh[key]
        out.append(f"<h3>{title}</h3><figure><figcaption>{title}: share of all {_n(n)} domains</figcaption>")
        out.append(_legend((("foreign", "a foreign provider"), ("home", "providers, none foreign"), ("none", "none found"))))
        out.append(_chart(f"ch-{key}", f"{title}: domains with a foreign provider, with only other providers, and with none found", [
            (k, [(c["foreign"], "c-f"), (c["targets"] - c["foreign"], "c-h"), (n - c["targets"], "c-n")], _pct(per[k]["foreign"]) + " foreign")
            for k, c in table.items()
        ], n))
        out.append("</figure>")
        out.append(_table(f"{title}: domains with a provider of this kind, and with a foreign one", [
            noun, "Domains with one", "With a foreign one", "Foreign, share of all domains", "Foreign, share of those with one"], (
            [_e(k), _n(c["targets"]), _n(c["foreign"]), _pct(per[k]["foreign"]), _pct(per[k]["foreign_of_any"])] for k, c in table.items()
        ), numeric=(1, 2, 3, 4)))
    out.append("</section>")
    return "".join(out)


def _providers(report: Report, top: int = 15) -> str:
    fig, sh = report.figures, report.shares
    n = fig["targets"]
    out = ['<section id="providers" aria-labelledby="h-providers"><h2 id="h-providers">2. Providers and jurisdictions</h2>']
    providers = fig["providers"]
    if not providers:
        out.append(f"<p>{_e(no_providers(report))}</p></section>")
        return "".join(out)
    shown = list(providers.items())[:top]
    out.append(f"<h3>Top {len(shown)} providers</h3><figure><figcaption>Domains per provider (of {_n(n)})</figcaption>")
    out.append(_legend((("foreign", f"parent outside {home_words(report.home)}"), ("home", "parent at home or unknown"))))
    out.append(_chart("ch-providers", f"The {len(shown)} providers most domains depend on", [
        (p, [(r["targets"], "c-f" if r["foreign"] else "c-h")], f'{_n(r["targets"])} ({_pct(sh["providers"][p]["any"])})')
        for p, r in shown
    ], shown[0][1]["targets"]))
    out.append("</figure>")
    out.append(_table("Every provider found: its ultimate parent, jurisdiction and the domains depending on it", [
        "Provider", "Ultimate parent", "Jurisdiction", "Domains", "Share of all domains", "Categories"], (
        [_e(p), _e(r["parent"] or "unknown"), _jurisdiction(r["jurisdiction"], bool(r["foreign"])), _n(r["targets"]), _pct(sh["providers"][p]["any"]),
         _e(", ".join(f"{c} {_n(k)}" for c, k in r["categories"].items()))]
        for p, r in providers.items()
    ), numeric=(3, 4)))
    juris = fig["jurisdictions"]
    out.append("<h3>Jurisdictions</h3><figure><figcaption>Domains per jurisdiction of the ultimate parent (of "
               f"{_n(n)}; a domain counts under every jurisdiction it depends on)</figcaption>")
    out.append(_legend((("foreign", "outside home"), ("home", "home"), ("unk", "unknown"))))
    out.append(_chart("ch-juris", "Domains with at least one provider whose ultimate parent falls under each jurisdiction", [
        (j, [(c["targets"], "c-f" if c["foreign"] else ("c-u" if j == "unknown" else "c-h"))], f'{_n(c["targets"])} ({_pct(sh["jurisdictions"][j]["any"])})')
        for j, c in juris.items()
    ], n))
    out.append("</figure>")
    out.append(_table("Domains per jurisdiction", ["Jurisdiction", "Domains", "Share of all domains", f"Outside {home_words(report.home)}"], (
        [_e(j), _n(c["targets"]), _pct(sh["jurisdictions"][j]["any"]), "yes" if c["foreign"] else "no"] for j, c in juris.items()
    ), numeric=(1, 2)))
    out.append("</section>")
    return "".join(out)


def _jurisdiction(code: str, foreign: bool) -> str:
    if not code:
        return "unknown"
    return f'<span class="fg">{_e(code)}</span><span class="tag f">foreign</span>' if foreign else _e(code)


def _groups(report: Report) -> str:
    out = ['<section id="groups" aria-labelledby="h-groups"><h2 id="h-groups">3. Per group</h2>']
    if not report.groups:
        out.append("<p>The domains carry no labels to group them by. Give them labels in the targets file "
                   "(<code>gemeente.nl sector=municipality</code>) or the configuration, then "
                   "<code>dijkwacht report --group-by sector</code>.</p></section>")
        return "".join(out)
    for index, (key, values) in enumerate(report.groups.items()):
        cats = sorted({c for fig in values.values() for c in fig["categories"]}, key=lambda c: -report.figures["categories"].get(c, {}).get("targets", 0))
        rows = []
        chart = []
        for value, fig in values.items():
            sh = shares_of(fig)
            name = value or f"(no {key})"
            chart.append((name, [(fig["foreign"], "c-f"), (fig["clean"], "c-h"), (fig["unknown"], "c-u")], _pct(sh["foreign"])))
            rows.append([_e(name), _n(fig["targets"]), _n(fig["foreign"]), _pct(sh["foreign"]), _n(fig["unknown"]), _n(fig["incomplete"])]
                        + [_pct(sh["categories"][c]["foreign"] if c in sh["categories"] else share(0, fig["targets"])) for c in cats])
        out.append(f"<h3>By {_e(key)}</h3><figure><figcaption>Per {_e(key)}: domains with a foreign dependency, without, and unknown</figcaption>")
        out.append(_legend((("foreign", "foreign"), ("home", "no foreign dependency"), ("unk", "unknown (incomplete)"))))
        out.append(_chart(f"ch-group-{index}", f"Share of domains with a foreign dependency, per {key}",
                          chart, None))
        out.append("</figure>")
        out.append(_table(f"Per {key}: the headline shares, and per category the share with a foreign provider",
                          [key, "Domains", "Foreign", "Share", "Unknown", "Incomplete", *(f"{c}: foreign" for c in cats)], rows,
                          numeric=range(1, 6 + len(cats))))
    out.append("</section>")
    return "".join(out)


KIND_WORDS = {
    "home_to_foreign": "moved out: a foreign provider came in",
    "foreign_to_home": "moved home: nothing foreign left",
    "foreign_to_foreign": "from one foreign provider to another",
    "other": "other (e.g. home to home)",
}


def _changes(report: Report) -> str:
    out = ['<section id="changes" aria-labelledby="h-changes"><h2 id="h-changes">4. Changes</h2>']
    if report.changes is None:
        out.append("<p>These figures come from one scan; changes over time come from the agent's history: "
                   "<code>dijkwacht report --state STATE.db --since 2026-01-01</code> (or <code>--config</code>).</p></section>")
        return "".join(out)
    ch = report.changes
    since = when(report.since, time=False)
    home = home_words(report.home)
    kinds = ch["kinds"]
    out.append(
        f'<p class="lead">Since {since}: <strong data-figure="home_to_foreign">{_n(kinds["home_to_foreign"])}</strong> moves out of {_e(home)} and '
        f'<strong data-figure="foreign_to_home">{_n(kinds["foreign_to_home"])}</strong> moves home; '
        f'<strong data-figure="ownership">{_n(ch["reasons"]["ownership"])}</strong> of all changes came from a change of owner, without any DNS change.</p>'
        f'<p>{_n(ch["changes"])} confirmed changes for {_n(ch["targets"])} domains in all. A move counts after the agent saw it in consecutive scans; '
        "an ownership change when a provider's ultimate parent moved to another jurisdiction (an acquisition).</p>"
    )
    if ch["changes"]:
        out.append(_table("Confirmed changes per category and kind", ["Category", "Changes", *(KIND_WORDS[k] for k in CHANGE_KINDS)], (
            [_e(c), _n(per["changes"]), *(_n(per[k]) for k in CHANGE_KINDS)] for c, per in ch["categories"].items()
        ), numeric=range(1, 2 + len(CHANGE_KINDS))))
        listed = (report.loaded.changes or [])[-CHANGES_LISTED:][::-1]
        note = f" (the newest {_n(len(listed))} of {_n(ch['changes'])}; all of them: dijkwacht history)" if len(listed) < ch["changes"] else ""
        out.append(_table(f"The changes, newest first{note}", ["Domain", "When", "Category", "Reason", "From", "To", "Evidence"], (
            [_e(c["target"]), _e(c["at"].replace("T", " ").replace("+00:00", " UTC")), _e(c["category"]), _e(c["reason"]),
             f'{_e(", ".join(c["from"]) or "none")} ({_e(c["from_jurisdiction"] or "?")})',
             f'{_e(", ".join(c["to"]) or "none")} ({_e(c["to_jurisdiction"] or "?")})' + ('<span class="tag f">foreign</span>' if c["to_foreign"] else ""),
             "<br>".join(_e(e) for e in c["evidence"][:4])]
            for c in listed
        )))
    out.append("</section>")
    return "".join(out)


def _domain_data(report: Report) -> str:
    """The domain table's data, gzip-compressed and base64-encoded (only [A-Za-z0-9+/=]: inert in HTML)."""
    providers: dict[tuple, int] = {}
    domains = []
    cats: dict[str, None] = {}
    for r in report.results:
        deps = []
        for d in r["dependencies"]:
            key = (d["provider"], d["name"] or d["provider"], d["parent"], d["jurisdiction"], int(d["foreign"]))
            index = providers.setdefault(key, len(providers))
            deps.append([d["category"], d["role"], index, d["confidence"], int(counts(d, report.count_inferred)), d["evidence"]])
            cats.setdefault(d["category"], None)
        st = status(r, count_inferred=report.count_inferred)[0]
        domains.append([r["target"], st, int(bool(r["errors"])), r.get("labels", {}), deps,
                        [f'{e["detector"]}: {e["message"]}' for e in r["errors"]]])
    payload = {"p": list(providers), "d": domains, "cats": list(cats)}
    raw = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    encoded = base64.b64encode(gzip.compress(raw, compresslevel=GZIP_LEVEL, mtime=0)).decode("ascii")
    return "\n".join(encoded[i:i + 4096] for i in range(0, len(encoded), 4096))


def _domains_count(n: int) -> str:
    return f"{_n(n)} is" if n == 1 else f"{_n(n)} are"


def _domains(report: Report) -> str:
    fig = report.figures
    return (
        '<section id="every-domain" aria-labelledby="h-domains"><h2 id="h-domains">5. Every domain</h2>'
        f'<p>{_n(fig["targets"])} domains, each with its dependencies: provider, ultimate parent, jurisdiction, role, confidence and the DNS '
        f'evidence behind each claim. {_domains_count(fig["incomplete"])} marked <span class="tag i">incomplete</span>: the scan had errors, so what '
        "it shows is a lower bound.</p>"
        '<noscript><p><strong>The domain table needs JavaScript.</strong> Every row is also in <code>dijkwacht report --format csv</code>.</p></noscript>'
        '<div class="controls" id="controls" hidden role="search">'
        '<label for="q">Filter (domain, provider, parent, country, evidence…)<input id="q" type="search" autocomplete="off" placeholder="e.g. microsoft or gemeente"></label>'
        '<label for="st">Domains<select id="st"><option value="">all</option><option value="f">with a foreign dependency</option>'
        '<option value="c">without a foreign dependency</option><option value="u">unknown</option><option value="i">incomplete</option></select></label>'
        '<label for="cat">Category<select id="cat"><option value="">any</option></select></label></div>'
        '<p id="count" aria-live="polite"></p>'
        '<div class="wrap"><table id="domains" aria-busy="true" aria-describedby="count"><caption>Every domain and its dependencies</caption><thead><tr>'
        + "".join(f'<th scope="col">{h}</th>' for h in ("Category", "Role", "Provider", "Ultimate parent", "Jurisdiction", "Confidence", "Evidence"))
        + '</tr></thead></table></div><button id="more" type="button" hidden>Show 100 more</button><button id="all" type="button" hidden></button>'
        f'<script type="application/octet-stream" id="domain-data">\n{_domain_data(report)}\n</script></section>'
    )


def _method(report: Report) -> str:
    cat = report.catalog
    files = "; ".join(f'{_e(f["file"])} ({when(f["updated"], time=False)})' for f in cat["files"]) or "none"
    ip_rows = [[_e(f["provider"]), when(f["updated"], time=False), _n(f["prefixes"])] for f in report.ip_data]
    out = ['<section id="method" aria-labelledby="h-method"><h2 id="h-method">6. Method and limits</h2>']
    for heading, paragraphs in method(report):
        out.append(f"<h3>{_e(heading)}</h3>" + "".join(f"<p>{_e(p)}</p>" for p in paragraphs))
    out.append(
        "<h3>Data and dates</h3><dl class=facts>"
        f"<dt>Source</dt><dd>{_e(source_words(report))}</dd>"
        f"<dt>Report made</dt><dd>{iso(report.generated)} with dijkwacht {_e(__version__)}</dd>"
        f"<dt>Catalog</dt><dd>{_n(cat['providers'])} providers; {files}"
        + (f"; newest ownership record {_e(cat['newest_ownership_record'])}" if cat.get("newest_ownership_record") else "") + "</dd>"
        f"<dt>IP data</dt><dd>{'per provider below' if ip_rows else 'no IP range files given to the report (--data-dir): their dates are not shown'}</dd></dl>"
    )
    if ip_rows:
        out.append(_table("IP range files: provider, date, prefixes", ["Provider", "Updated", "Prefixes"], ip_rows, numeric=(2,)))
    out.extend(f'<p class="note">{_e(n)}</p>' for n in report.loaded.notes)
    out.append("</section>")
    return "".join(out)


def render_html(report: Report) -> str:
    fig = report.figures
    source = _e(source_words(report))
    sections = [_headline(report), _providers(report), _groups(report), _changes(report), _domains(report), _method(report)]
    nav = "".join(f'<li><a href="#{i}">{t}</a></li>' for i, t in (
        ("headline", "1. Headline"), ("providers", "2. Providers"), ("groups", "3. Groups"), ("changes", "4. Changes"),
        ("every-domain", "5. Every domain"), ("method", "6. Method")))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="referrer" content="no-referrer"><link rel="icon" href="data:,">'
        f"<title>{_e(report.title)}</title><style>{STYLE}</style></head><body>"
        f'<header class="top"><p class="kicker">dijkwacht report · {_n(fig["targets"])} domains</p><h1>{_e(report.title)}</h1>'
        f'<p class="meta">From {source}. Home: {_e(home_words(report.home))}. Made {when(report.generated)}.</p>'
        f'<nav aria-label="Sections"><ol>{nav}</ol></nav></header><main>'
        + "".join(sections)
        + f'</main><footer>Made with dijkwacht {_e(__version__)}. Every figure on this page is also in '
        "<code>dijkwacht report --format json</code>; every row in <code>--format csv</code>.</footer>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
