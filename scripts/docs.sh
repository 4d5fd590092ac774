#!/usr/bin/env bash
# Builds the documentation site (mkdocs.yml, docs/) with `mkdocs build --strict`, which
# fails on a link to a missing page and on a page missing from the nav, then checks what
# mkdocs 1.4 does not: every #anchor of a link between pages, and the relative links of
# README.md and the chart's README (files and, into docs/, anchors).
# Usage: scripts/docs.sh [site-dir]   (default: a temporary directory, removed after)
# mkdocs and mkdocs-material are the Debian packages of those names; as root this script
# installs them with apt-get when missing. DOCS_OPTIONAL=1 (scripts/test.sh) skips the
# check when they are missing and cannot be installed, unless CI=true.
set -euo pipefail
cd "$(dirname "$0")/.."

has_mkdocs() {
  command -v mkdocs >/dev/null || return 1
  local py
  py=$(head -1 "$(command -v mkdocs)" | sed -n 's/^#! *//p')
  "${py:-python3}" -c 'import sys, mkdocs.utils; sys.exit("material" not in mkdocs.utils.get_theme_names())' 2>/dev/null
}
if ! has_mkdocs; then  if [ "$(id -u)" != 0 ]; then
    echo "docs.sh: needs mkdocs and mkdocs-material (apt-get install mkdocs mkdocs-material)" >&2
    if [ "${DOCS_OPTIONAL:-0}" = 1 ] && [ "${CI:-}" != true ]; then
      echo "docs.sh: skipped (not root, so not installed)" >&2
      exit 0
    fi
    exit 1
  fi
  echo "installing: mkdocs mkdocs-material"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends mkdocs mkdocs-material >/dev/null
fi

site=${1:-}
if [ -z "$site" ]; then
  site=$(mktemp -d)
  trap 'rm -rf "$site"' EXIT
fi
mkdocs build --strict --quiet --site-dir "$site"

# mkdocs runs on the system Python; use the same one for the checks.
py=$(head -1 "$(command -v mkdocs)" | sed -n 's/^#! *//p')
"${py:-python3}" - "$site" <<'PY'
import html.parser, os, re, sys
from urllib.parse import urlsplit, unquote

site = sys.argv[1]

class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(a["id"])
        if tag == "a" and a.get("href"):
            self.links.append(a["href"])

pages = {}
for root, _, files in os.walk(site):
    for f in files:
        if f.endswith(".html"):
            p = Page()
            with open(os.path.join(root, f), encoding="utf-8") as fh:
                p.feed(fh.read())
            pages[os.path.normpath(os.path.join(root, f))] = p

bad = []
for path, page in pages.items():
    if os.path.relpath(path, site).startswith(("search", "404")):
        continue
    for href in page.links:
        u = urlsplit(href)
        if u.scheme or u.netloc or not u.fragment:
            continue
        target = path if not u.path else os.path.normpath(os.path.join(os.path.dirname(path), unquote(u.path)))
        if os.path.isdir(target):
            target = os.path.join(target, "index.html")
        t = pages.get(target)
        if t is None:
            continue  # mkdocs --strict has judged page links
        if u.fragment not in t.ids:
            bad.append(f"{os.path.relpath(path, site)}: link {href}: no #{u.fragment} there")

# The Markdown files outside docs/: relative links must name existing files; a link
# into docs/ with an anchor must name a heading of that page (as mkdocs renders it).
def page_of(md):
    rel = os.path.relpath(md, "docs")
    base = rel[:-3]
    if os.path.basename(base) == "index":
        return os.path.normpath(os.path.join(site, os.path.dirname(base), "index.html"))
    return os.path.normpath(os.path.join(site, base, "index.html"))

link = re.compile(r"\]\(([^)\s]+)\)")
for md in ["README.md", "charts/udp-discovery-bridge/README.md"]:
    text = open(md, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    for href in link.findall(text):
        u = urlsplit(href)
        if u.scheme or u.netloc or href.startswith("#"):
            continue
        target = os.path.normpath(os.path.join(os.path.dirname(md), unquote(u.path)))
        if not os.path.exists(target):
            bad.append(f"{md}: link {href}: no file {target}")
            continue
        if u.fragment and target.startswith("docs" + os.sep) and target.endswith(".md"):
            t = pages.get(page_of(target))
            if t is None or u.fragment not in t.ids:
                bad.append(f"{md}: link {href}: no #{u.fragment} in {target}")

if bad:
    print("docs: broken links:\n  " + "\n  ".join(sorted(bad)), file=sys.stderr)
    sys.exit(1)
print(f"docs: {len(pages)} pages built, every link and anchor resolves")
PY
