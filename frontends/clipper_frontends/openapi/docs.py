"""``GET /docs``: one self-contained HTML page rendering ``/openapi.json``.

The page fetches the document from the same origin and lists every
operation (method, path, summary, parameters, request body, responses) with
its schemas, ``$ref``s resolved; no script or style comes from elsewhere.
"""

from __future__ import annotations

import html

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font: 14px/1.45 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f6f7f9; }}
header {{ background: #1d2330; color: #fff; padding: 14px 24px; }}
header h1 {{ margin: 0; font-size: 20px; }} header p {{ margin: 4px 0 0; color: #c9cfdb; }}
main {{ max-width: 1000px; margin: 0 auto; padding: 16px 24px; }}
details {{ background: #fff; border: 1px solid #dde1e8; border-radius: 6px; margin: 8px 0; }}
summary {{ cursor: pointer; padding: 8px 12px; font-family: ui-monospace, monospace; }}
.m {{ display: inline-block; min-width: 56px; font-weight: 700; color: #fff;
      border-radius: 4px; text-align: center; margin-right: 8px; }}
.get {{ background: #2f7ad0; }} .post {{ background: #2e9b5f; }}
.s {{ color: #5b6475; font-family: system-ui, sans-serif; margin-left: 8px; }}
.body {{ padding: 0 12px 12px; }} h4 {{ margin: 10px 0 4px; }}
pre {{ background: #f0f2f5; padding: 8px; border-radius: 4px; overflow-x: auto; margin: 0; }}
#error {{ color: #b3261e; }}
</style></head>
<body><header><h1>{title}</h1><p id="info">loading {spec_url} ...</p></header>
<main><p id="error"></p><div id="ops"></div></main>
<script>
"use strict";
function resolve(doc, node, seen) {{
  if (Array.isArray(node)) return node.map(n => resolve(doc, n, seen));
  if (!node || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {{
    if (seen.includes(node.$ref)) return {{"$ref": node.$ref}};
    const target = node.$ref.replace(/^#\\//, "").split("/").reduce((o, k) => o && o[k], doc);
    return resolve(doc, target, seen.concat([node.$ref]));
  }}
  const out = {{}};
  for (const [k, v] of Object.entries(node)) out[k] = resolve(doc, v, seen);
  return out;
}}
function el(tag, cls, text) {{
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}}
function block(parent, title, value) {{
  parent.appendChild(el("h4", "", title));
  parent.appendChild(el("pre", "", JSON.stringify(value, null, 2)));
}}
function render(doc) {{
  document.getElementById("info").textContent =
    (doc.info.title || "") + " " + (doc.info.version || "") + " (OpenAPI " + doc.openapi + ")";
  const ops = document.getElementById("ops");
  if (doc.info.description) ops.appendChild(el("p", "", doc.info.description));
  for (const [path, item] of Object.entries(doc.paths || {{}})) {{
    for (const [method, op] of Object.entries(item)) {{
      const d = el("details");
      const s = el("summary");
      s.appendChild(el("span", "m " + method, method.toUpperCase()));
      s.appendChild(document.createTextNode(path));
      s.appendChild(el("span", "s", op.summary || ""));
      d.appendChild(s);
      const b = el("div", "body");
      if (op.description) b.appendChild(el("p", "", op.description));
      if (op.security && op.security.length) b.appendChild(
        el("p", "", "Needs: Authorization: Bearer <token>"));
      if (op.parameters) block(b, "Parameters", resolve(doc, op.parameters, []));
      if (op.requestBody) block(b, "Request body",
        resolve(doc, op.requestBody.content, []));
      for (const [status, r] of Object.entries(op.responses || {{}})) {{
        block(b, "Response " + status + ": " + (r.description || ""),
              r.content ? resolve(doc, r.content, []) : "no body");
      }}
      d.appendChild(b);
      ops.appendChild(d);
    }}
  }}
}}
fetch({spec_json}).then(r => {{
  if (!r.ok) throw new Error("GET {spec_url} answered " + r.status);
  return r.json();
}}).then(render).catch(e => {{ document.getElementById("error").textContent = String(e); }});
</script></body></html>
"""


def docs_page(title: str, spec_url: str = "/openapi.json") -> bytes:
    """The HTML of the docs page for the document at ``spec_url``."""
    import json

    return _PAGE.format(title=html.escape(title), spec_url=html.escape(spec_url),
                        spec_json=json.dumps(spec_url)).encode()
