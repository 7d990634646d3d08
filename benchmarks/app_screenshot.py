"""A screenshot of `cknet app` as a person sees it, in headless Chromium.

Serves the page on localhost (no network beyond it) with one of the demo's held-out
studies analysed when it opens, and saves a PNG of it (docs/assets/app.png by default),
for a person to look at: the report, the figure of where each word looked, the warnings.

    pip install ".[app]" && cknet demo          # the model and its samples
    apt-get install chromium                    # Debian's package: /usr/bin/chromium
    python benchmarks/app_screenshot.py [--model cknet-demo/model] [--study cknet-demo/samples/ID]
        [--output docs/assets/app.png]
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from docs_screenshots import CHROMIUM_FLAGS

from cknet.app import serve
from cknet.data.images import IMAGE_SUFFIXES


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_up(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the page at {url} did not come up in {seconds:.0f} s") from None
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("cknet-demo/model"))
    parser.add_argument("--study", type=Path, help="a study folder (default: the demo's first sample)")
    parser.add_argument("--output", type=Path, default=Path("docs/assets/app.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = parser.parse_args()
    if not Path(args.chromium).is_file():
        sys.exit(f"no Chromium at {args.chromium}: apt-get install chromium, or pass --chromium PATH")
    study = args.study or sorted((args.model.parent / "samples").iterdir())[0]
    views = sorted(p for p in study.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    port = free_port()
    page = serve(args.model, port=port, example=views, block=False)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(url)
        with tempfile.TemporaryDirectory() as profile:
            subprocess.run([args.chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
                            f"--window-size={args.width},{args.height}", "--virtual-time-budget=30000",
                            f"--screenshot={args.output.resolve()}", url],
                           check=True, capture_output=True, timeout=180)
    finally:
        page.close()
    print(f"{url} ({args.model}, study {study.name}): {args.output}")


if __name__ == "__main__":
    main()
