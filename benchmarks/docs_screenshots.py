"""Screenshots of the documentation site as a reader sees it, in headless Chromium.

Builds the site (``mkdocs build --strict``), serves it on localhost with no network
beyond it, and saves a PNG of each page at a desktop and a narrow width, for a person
to look at: figures drawn, code blocks that fit the column, API pages readable.

    apt-get install chromium          # Debian's package: /usr/bin/chromium
    python benchmarks/docs_screenshots.py [--output runs/docs_screenshots]
        [--pages index concepts quickstart api/model] [--widths 1280 800]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = ["index", "concepts", "quickstart", "api/model"]
# What keeps Chromium from reaching for the network (refused here) and from needing a GPU.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def build_site(site: Path) -> None:
    subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)], cwd=REPO,
                   check=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Serve without logging every request."""


def serve(site: Path) -> http.server.ThreadingHTTPServer:
    """A static server for ``site`` on a free localhost port, in a background thread."""
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def screenshot(chromium: str, url: str, path: Path, width: int, height: int, profile: Path) -> None:
    subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                    f"--window-size={width},{height}", f"--screenshot={path}", url],
                   check=True, capture_output=True, timeout=120)
    if not path.is_file():
        raise RuntimeError(f"Chromium wrote no screenshot for {url}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("runs/docs_screenshots"))
    parser.add_argument("--pages", nargs="+", default=PAGES, help="page paths without index.html")
    parser.add_argument("--widths", type=int, nargs="+", default=[1280, 800])
    parser.add_argument("--height", type=int, default=2400, help="window height: how much of a page is shot")
    parser.add_argument("--site", type=Path, help="an already built site (default: build one)")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        sys.exit(f"no Chromium at {args.chromium}: apt-get install chromium, or pass --chromium PATH")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        site = args.site or Path(scratch) / "site"
        if args.site is None:
            build_site(site)
        server = serve(site)
        try:
            for page in args.pages:
                if not (site / page / "index.html").is_file() and page != "index":
                    sys.exit(f"the site has no page {page!r} ({site / page / 'index.html'})")
                url = f"http://127.0.0.1:{server.server_port}/{'' if page == 'index' else page + '/'}"
                for width in args.widths:
                    path = args.output / f"{page.replace('/', '_')}-{width}.png"
                    screenshot(args.chromium, url, path, width, args.height, Path(scratch) / "profile")
                    print(f"{url} at {width} px: {path}")
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
