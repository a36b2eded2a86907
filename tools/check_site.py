"""Check the built course website in a real browser (Debian's Chromium, headless).

    python tools/check_site.py                      # checks _site/
    python tools/check_site.py _site-fast --screenshot-dir /tmp/shots

Serves the site on 127.0.0.1 (a random free port, http.server in a thread), opens it in
/usr/bin/chromium driven by Playwright (which only drives it: no browser is downloaded), and loads
the index, every lesson page, the homework page and a search. On every page it requires:

* no console error, no uncaught exception, no failed request and no request that leaves 127.0.0.1
  (the site is self-contained: MathJax and the Colab badge are served with it);
* every <img> loaded (naturalWidth > 0), after lazy images are forced to load;
* formulas typeset by MathJax without errors;
* on a lesson page: at least one plot, the Colab badge linking to that notebook in Colab, and no
  executed cell that ended in a traceback.

It also checks the navigation lists the lessons in order and that no homework master was rendered.
Screenshots of one lesson with plots (its top, and its first plot) are written to --screenshot-dir.
Exit status 0 when everything passes, 1 with one line per problem otherwise.
"""
import argparse
import functools
import http.server
import importlib.util
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOT_PAGE = "04_training_and_perplexity"  # a lesson with plots, printed samples and formulas
PAGE_TIMEOUT_MS = 30_000


def colab_module():
    """d2lrnn/colab.py on its own (no MXNet needed to check a website)."""
    spec = importlib.util.spec_from_file_location("_d2lrnn_colab", ROOT / "d2lrnn" / "colab.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def lesson_names():
    return [p.stem for p in sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))]


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


class SiteServer:
    """The site folder served on 127.0.0.1 in a background thread, as a context manager."""

    def __init__(self, folder):
        handler = functools.partial(QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


# JavaScript run in each page once it has loaded.
WAIT_FOR_IMAGES_AND_MATH = """async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.complete ? null :
      new Promise(done => { img.addEventListener("load", done); img.addEventListener("error", done); })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  return null;
}"""

PAGE_FACTS = """() => {
  const images = Array.from(document.images).map(img => ({
      src: img.getAttribute("src"), loaded: img.complete && img.naturalWidth > 0,
      output: !!img.closest(".cell_output"), width: img.naturalWidth}));
  const badge = document.querySelector("a.colab-badge-link");
  return {
    title: document.title,
    images: images,
    badgeHref: badge ? badge.href : null,
    badgeLoaded: badge ? Array.from(badge.querySelectorAll("img")).some(i => i.naturalWidth > 0) : false,
    mathCount: document.querySelectorAll("mjx-container").length,
    mathErrors: document.querySelectorAll("mjx-merror").length,
    unrenderedMath: document.querySelectorAll(
                        "div.math:not(:has(mjx-container)), span.math:not(:has(mjx-container))").length,
    tracebacks: Array.from(document.querySelectorAll(
                         ".cell_output .output.traceback, .cell_output .ansi-red-fg"))
                     .map(e => e.innerText.slice(0, 200)),
    stderr: Array.from(document.querySelectorAll(".cell_output .output.stderr"))
                 .map(e => e.innerText.slice(0, 300)),
    navLinks: Array.from(document.querySelectorAll("nav.bd-docs-nav a.reference.internal"))
                   .map(a => a.getAttribute("href")),
    searchBox: !!document.querySelector("form.bd-search input[name=q], input[name=q]"),
  };
}"""


class Browser:
    """Chromium through Playwright, with a fresh profile; records what goes wrong on each page."""

    def __init__(self, playwright, executable, host):
        self.profile = tempfile.mkdtemp(prefix="d2lrnn-chromium-")
        # Playwright manages --user-data-dir itself (the fresh profile above) and adds --headless
        # in the form this Chromium expects, so those two are not passed as plain flags.
        flags = [f for f in CHROMIUM_FLAGS if f != "--headless"]
        self.context = playwright.chromium.launch_persistent_context(
            self.profile, executable_path=executable, headless=True, args=flags,
            viewport={"width": 1280, "height": 900}, device_scale_factor=1)
        self.host = host
        self.problems = []
        self.context.route("**/*", self._route)
        self.page = self.context.pages[0] if self.context.pages else self.context.new_page()
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.problems.append(f"uncaught exception: {exc}"))
        self.page.on("requestfailed", lambda req: self.problems.append(
            f"request failed: {req.url} ({req.failure})"))
        self.page.on("response", self._response)

    def _route(self, route):
        url = urlparse(route.request.url)
        if url.scheme in ("data", "blob") or url.netloc == self.host:
            route.continue_()
        else:
            self.problems.append(f"request leaves the site: {route.request.url}")
            route.abort()

    def _console(self, msg):
        if msg.type == "error":
            self.problems.append(f"console error: {msg.text}")

    def _response(self, response):
        if response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def open(self, url):
        """Load `url`, wait for its images and formulas; returns (facts, problems of this page)."""
        self.problems = []
        self.page.goto(url, wait_until="load", timeout=PAGE_TIMEOUT_MS)
        self.page.evaluate(WAIT_FOR_IMAGES_AND_MATH)
        self.page.wait_for_load_state("networkidle", timeout=PAGE_TIMEOUT_MS)
        return self.page.evaluate(PAGE_FACTS), list(self.problems)

    def close(self):
        self.context.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def page_problems(facts, problems):
    """Problems every page must be free of."""
    found = list(problems)
    for img in facts["images"]:
        if not img["loaded"]:
            found.append(f"image not loaded: {img['src']}")
    if facts["mathErrors"]:
        found.append(f"{facts['mathErrors']} formula(s) MathJax could not typeset")
    if facts["unrenderedMath"]:
        found.append(f"{facts['unrenderedMath']} formula(s) left untypeset")
    if not facts["searchBox"]:
        found.append("no search box")
    return found


def lesson_problems(name, facts, colab):
    found = []
    plots = [img for img in facts["images"] if img["output"]]
    if not plots:
        found.append("no plot in the cell outputs")
    expected = colab.colab_url(f"notebooks/{name}.ipynb")
    if facts["badgeHref"] != expected:
        found.append(f"Colab badge links to {facts['badgeHref']!r}, expected {expected!r}")
    elif not facts["badgeLoaded"]:
        found.append("Colab badge image not shown")
    for text in facts["tracebacks"]:
        found.append(f"a cell output shows an error: {text!r}")
    return found


def nav_problems(facts, names):
    """The sidebar lists the lessons in lesson order, then the homework."""
    hrefs = [h.split("#")[0] for h in facts["navLinks"]]
    lessons = [Path(h).stem for h in hrefs if "lessons/" in h]
    found = []
    if lessons != names:
        found.append(f"navigation lists lessons {lessons}, expected {names}")
    if not any(h.endswith("homework.html") for h in hrefs):
        found.append("navigation has no homework page")
    return found


def static_problems(site, names):
    """Checks on the files: every lesson built, no homework master rendered, no solution text."""
    found = []
    for name in names:
        if not (site / "lessons" / f"{name}.html").is_file():
            found.append(f"missing page lessons/{name}.html")
    for path in site.rglob("*"):
        rel = path.relative_to(site).as_posix()
        if re.search(r"(^|/)(homework/|hw\d+_)", rel) and path.is_file():
            found.append(f"a homework master was published: {rel}")
    for path in site.rglob("*.html"):
        text = path.read_text(encoding="utf-8", errors="replace")
        if "BEGIN SOLUTION" in text or "END SOLUTION" in text:
            found.append(f"{path.relative_to(site)} contains solution markers")
    return found


def run_search(browser, base, term="perplexity"):
    """The search page finds `term`; returns the problems."""
    facts, problems = browser.open(f"{base}search.html?q={term}")
    found = page_problems(facts, problems)
    try:
        browser.page.wait_for_selector("#search-results li", timeout=PAGE_TIMEOUT_MS)
    except Exception:  # playwright's TimeoutError
        found.append(f"the search for {term!r} shows no result")
        return found, 0
    return found, browser.page.locator("#search-results li").count()


def screenshots(browser, base, name, folder):
    """Two PNGs of one lesson: its top (badge, title, navigation) and its first plot."""
    folder.mkdir(parents=True, exist_ok=True)
    browser.open(f"{base}lessons/{name}.html")
    top = folder / f"{name}-top.png"
    browser.page.screenshot(path=str(top))
    plot = folder / f"{name}-plot.png"
    first = browser.page.locator(".cell_output img").first
    first.scroll_into_view_if_needed()
    browser.page.evaluate("window.scrollBy(0, -120)")  # the code cell that drew it, partly
    browser.page.screenshot(path=str(plot))
    return [top, plot]


def check(site, executable=CHROMIUM, screenshot_dir=None, screenshot_page=SCREENSHOT_PAGE, log=print):
    """Check the site in `site`; returns the list of problems (empty when it passes)."""
    from playwright.sync_api import sync_playwright

    site = Path(site).resolve()
    if not (site / "index.html").is_file():
        return [f"no index.html in {site}: build the site first (python tools/build_site.py)"]
    names = lesson_names()
    colab = colab_module()
    problems = [f"files: {p}" for p in static_problems(site, names)]
    with SiteServer(site) as server, sync_playwright() as pw:
        browser = Browser(pw, executable, urlparse(server.url).netloc)
        try:
            start = time.time()
            facts, raw = browser.open(server.url + "index.html")
            found = page_problems(facts, raw) + nav_problems(facts, names)
            problems += [f"index.html: {p}" for p in found]
            log(f"index.html: {len(facts['images'])} images, {'ok' if not found else 'PROBLEMS'}")
            for name in names:
                facts, raw = browser.open(f"{server.url}lessons/{name}.html")
                found = page_problems(facts, raw) + lesson_problems(name, facts, colab)
                problems += [f"lessons/{name}.html: {p}" for p in found]
                plots = sum(img["output"] for img in facts["images"])
                note = f", {len(facts['stderr'])} stderr output(s)" if facts["stderr"] else ""
                log(f"lessons/{name}.html: {plots} plots, {facts['mathCount']} formulas{note}, "
                    f"{'ok' if not found else 'PROBLEMS'}")
            facts, raw = browser.open(server.url + "homework.html")
            found = page_problems(facts, raw)
            problems += [f"homework.html: {p}" for p in found]
            log(f"homework.html: {facts['mathCount']} formulas, {'ok' if not found else 'PROBLEMS'}")
            found, hits = run_search(browser, server.url)
            problems += [f"search.html: {p}" for p in found]
            log(f"search.html?q=perplexity: {hits} results, {'ok' if not found else 'PROBLEMS'}")
            if screenshot_dir is not None and screenshot_page in names:
                for path in screenshots(browser, server.url, screenshot_page, Path(screenshot_dir)):
                    log(f"screenshot: {path}")
            log(f"browser check: {len(names) + 3} pages in {time.time() - start:.1f} s")
        finally:
            browser.close()
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", nargs="?", type=Path, default=ROOT / "_site", help="the built site (default "
                                                                                   "_site/)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the browser executable (default {CHROMIUM})")
    parser.add_argument("--screenshot-dir", type=Path, default=None,
                        help="write PNG screenshots of one lesson here (default: <site>-screenshots/)")
    parser.add_argument("--screenshot-page", default=SCREENSHOT_PAGE, help="the lesson to photograph")
    args = parser.parse_args(argv)
    if not Path(args.chromium).exists():
        print(f"error: no browser at {args.chromium} (Debian: apt-get install -y chromium)", file=sys.stderr)
        return 2
    shots = args.screenshot_dir or args.site.resolve().parent / f"{args.site.resolve().name}-screenshots"
    problems = check(args.site, args.chromium, shots, args.screenshot_page)
    for p in problems:
        print(f"PROBLEM {p}")
    print(f"site check: {'passed' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
