"""The app on a slow phone network: how soon `/` and `/p/{id}` show something.

A real `sunbid serve` with the demo projects, Debian's chromium driven by
Playwright at phone size (tests/browser.py's PHONE), and the browser's own
network emulation over CDP (`Network.emulateNetworkConditions`: 300 ms
latency, 400 kbit/s down and up, i.e. 50,000 bytes/s; the CPU as it is).
The emulation is set on the page and on the app's service worker, so what the
worker fetches from the network is as slow as what the page fetches.

For each page, two figures, median (and min–max) of `--runs` runs:

- `fcp`: first contentful paint (the `paint` performance entry);
- `content`: until the page's own content is on screen: the first project card
  on `/`, the project's title on `/p/{id}` (the time of the DOM change that
  added it, to the next animation frame).

Cold: a fresh browser profile (no HTTP cache, no service worker, no data
kept). Warm: the second visit of the same page in that profile, once the
service worker controls it and has cached the app.

    .venv/bin/python bench/app_3g.py                 # 5 runs
    .venv/bin/python bench/app_3g.py --runs 7 --checkout /path/to/older/sunbid
    .venv/bin/python bench/app_3g.py --no-worker     # the warm visit with the HTTP cache only
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from common import ROOT, free_port, print_machine, save_results

sys.path.insert(0, str(ROOT))
from tests.browser import CHROMIUM, CHROMIUM_ARGS, PHONE

LATENCY_MS = 300
THROUGHPUT = 50_000  # bytes per second, both ways (400 kbit/s)
PROJECT = "YW-GC-2026-0141"
PAGES = {"/": "[data-testid=project-link]", f"/p/{PROJECT}": "#project-title"}
TIMEOUT_MS = 60_000

# Injected before any of the page's scripts (Playwright's init scripts are not
# subject to the page's CSP): the moment the page's content first appears.
WATCH_CONTENT = """
(() => {
  const selector = %s;
  window.__contentAt = null;
  const seen = () => {
    if (window.__contentAt !== null || !document.querySelector(selector)) return false;
    const added = performance.now();
    window.__contentAt = -1;
    requestAnimationFrame(() => { window.__contentAt = Math.max(added, performance.now()); });
    return true;
  };
  new MutationObserver((_, observer) => { if (seen()) observer.disconnect(); })
    .observe(document, { childList: true, subtree: true });
})();
"""
CONDITIONS = {
    "offline": False,
    "latency": LATENCY_MS,
    "downloadThroughput": THROUGHPUT,
    "uploadThroughput": THROUGHPUT,
}


class Server:
    """`sunbid serve` with the demo data in a temporary directory."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.port = free_port()
        self.data = tempfile.TemporaryDirectory(prefix="sunbid-3g-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        env = {**os.environ, "SUNBID_DATA_DIR": self.data.name, "SUNBID_DEMO": "1"}
        self.log = open(Path(self.data.name) / "server.log", "ab")  # closed on exit
        self.process = subprocess.Popen(
            [sys.executable, "-m", "server", "serve", "--port", str(self.port)],
            cwd=self.cwd,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def __exit__(self, *_: object) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(15)
        self.log.close()
        self.data.cleanup()


def throttle_page(page: Any) -> None:
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", CONDITIONS)


def throttle_workers(browser_cdp: Any) -> int:
    """The same conditions on every service worker (its fetches are its own, not the page's)."""
    targets = browser_cdp.send("Target.getTargets")["targetInfos"]
    workers = [t for t in targets if t["type"] == "service_worker"]
    for target in workers:
        session = browser_cdp.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": False}
        )["sessionId"]
        for number, (method, params) in enumerate(
            (("Network.enable", {}), ("Network.emulateNetworkConditions", CONDITIONS)), 1
        ):
            browser_cdp.send(
                "Target.sendMessageToTarget",
                {
                    "sessionId": session,
                    "message": json.dumps({"id": number, "method": method, "params": params}),
                },
            )
    return len(workers)


def measure(page: Any, url: str, selector: str) -> dict[str, float]:
    page.add_init_script(WATCH_CONTENT % json.dumps(selector))
    page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
    page.wait_for_function("() => window.__contentAt > 0", timeout=TIMEOUT_MS, polling=50)
    page.wait_for_function(
        "() => performance.getEntriesByName('first-contentful-paint').length", timeout=TIMEOUT_MS
    )
    return page.evaluate(
        """() => ({
            fcp: performance.getEntriesByName('first-contentful-paint')[0].startTime / 1000,
            content: window.__contentAt / 1000,
            controlled: Boolean(navigator.serviceWorker && navigator.serviceWorker.controller),
        })"""
    )


def one_run(
    browser: Any, browser_cdp: Any, base: str, path: str, selector: str, worker: bool
) -> dict[str, Any]:
    context = browser.new_context(**{**PHONE, "service_workers": "allow" if worker else "block"})
    try:
        page = context.new_page()
        throttle_page(page)
        cold = measure(page, base + path, selector)
        if worker:
            # The worker installs after the first render and caches the app (throttled too).
            page.wait_for_function(
                "async () => Boolean((await navigator.serviceWorker.ready).active)",
                timeout=TIMEOUT_MS,
            )
        else:
            page.wait_for_timeout(3000)  # what the first visit kept: the HTTP cache, IndexedDB
        page.close()
        throttled = throttle_workers(browser_cdp) if worker else 0
        page = context.new_page()
        throttle_page(page)
        warm = measure(page, base + path, selector)
        if warm["controlled"] != worker:
            raise RuntimeError(f"the warm visit of {path}: service worker {warm['controlled']}")
        return {"cold": cold, "warm": warm, "workers_throttled": throttled}
    finally:
        context.close()


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--checkout", help="run the server (and app) of another checkout")
    parser.add_argument(
        "--no-worker",
        action="store_true",
        help="block service workers: the warm visit has only the HTTP cache (and IndexedDB)",
    )
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    cwd = Path(args.checkout).resolve() if args.checkout else ROOT
    print_machine()
    print(f"app of {cwd}; {LATENCY_MS} ms, {THROUGHPUT} bytes/s both ways; {args.runs} runs")
    print("service workers blocked" if args.no_worker else "service workers allowed")
    results: dict[str, Any] = {
        "checkout": str(cwd),
        "runs": args.runs,
        "service_worker": not args.no_worker,
        "pages": {},
    }
    with Server(cwd) as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        browser_cdp = browser.new_browser_cdp_session()
        try:
            for path, selector in PAGES.items():
                runs = [
                    one_run(browser, browser_cdp, server.url, path, selector, not args.no_worker)
                    for _ in range(args.runs)
                ]
                figures = {
                    f"{visit}_{metric}": summary([run[visit][metric] for run in runs])
                    for visit in ("cold", "warm")
                    for metric in ("fcp", "content")
                }
                results["pages"][path] = {"runs": runs, **figures}
                print(f"\n{path}  (median, min–max, seconds)")
                for name, figure in figures.items():
                    print(
                        f"  {name:<14} {figure['median']:6.2f}   "
                        f"{figure['min']:5.2f}–{figure['max']:5.2f}"
                    )
        finally:
            browser.close()
    name = "app_3g" + ("-checkout" if args.checkout else "")
    name += "-no-worker" if args.no_worker else ""
    print(f"\nresults: {save_results(name, results)}")


if __name__ == "__main__":
    main()
