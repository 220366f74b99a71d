#!/usr/bin/env python3
"""Make docs/report.png, the README's screenshot: the report of the demo scan, in Debian's chromium.

    python docs/screenshot.py

Runs the README's two commands (scan to JSON, report to HTML) in a temporary directory and
photographs the top of the page. Runs in a private network namespace, as the tests do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "report.png"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> None:
    if not os.environ.get("DIJKWACHT_BENCH_NETNS"):
        os.environ["DIJKWACHT_BENCH_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$0" "$@"', sys.executable, *sys.argv])
    work = Path(tempfile.mkdtemp(prefix="dijkwacht-screenshot-"))
    dijkwacht = [sys.executable, "-m", "dijkwacht.cli", "--log-level", "error"]
    subprocess.run([*dijkwacht, "scan", "--demo", "--quiet", "--format", "json", "--output", "results.json"], check=True, cwd=work)
    subprocess.run([*dijkwacht, "report", "results.json", "--output", "report.html"], check=True, cwd=work)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        page = browser.new_page(viewport={"width": 1000, "height": 1180})
        page.goto((work / "report.html").as_uri())
        page.wait_for_selector("#domains tbody")
        page.screenshot(path=str(OUT))
        browser.close()
    print(f"{OUT} ({OUT.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
