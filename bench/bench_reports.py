"""Benchmark (not a test): render 100,000 findings in every report format, print time and memory.

    .venv/bin/python bench/bench_reports.py [--findings 100000] [--keep DIR]

The findings are the sample's (gridrecon.toml at as_of 2026-11-20), replicated with new ids and
names, spread over every county of the org tree, with a mix of states, 2% waived and a 30-run
trend. Each format is rendered in a fresh process so its memory is its own: `seconds` is one
render without tracing, `python peak` the peak of Python allocations during a second render
(tracemalloc), `RSS growth` how far rendering raised the process's peak resident memory above
what loading the input took. With chromium
installed, the time headless Chromium takes to open report.html and render its first page is
printed as well.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import pickle
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parent.parent
FORMATS = ["findings.json", "findings.csv", "summary.json", "findings.xlsx", "findings.xlsx by org",
           "report.html"]  # fmt: skip


def build(count: int):
    from gridrecon import api
    from gridrecon.core.config import load_config

    result = api.reconcile(load_config(REPO / "gridrecon.toml"), as_of=dt.date(2026, 11, 20))
    base = result.findings
    copies = -(-count // len(base))
    frame = pd.concat([base] * copies, ignore_index=True).iloc[:count].copy()
    n = np.arange(count)
    rng = np.random.default_rng(20261120)
    frame["finding_id"] = [f"{i:016x}" for i in n]
    frame["pms_id"] = [f"{p}{i:08x}" if isinstance(p, str) else p
                       for p, i in zip(frame["pms_id"], n, strict=True)]  # fmt: skip
    frame["marketing_id"] = [f"{m}{i}" if isinstance(m, str) else m
                             for m, i in zip(frame["marketing_id"], n, strict=True)]  # fmt: skip
    frame["asset_name"] = [f"{a}{i}" if isinstance(a, str) else a
                           for a, i in zip(frame["asset_name"], n, strict=True)]  # fmt: skip
    counties = result.orgs.loc[result.orgs["org_code"].str.len() == 7, "org_code"].to_numpy()
    frame["org_code"] = rng.choice(counties, size=count)
    frame["state"] = rng.choice(["new", "open", "open", "open", "reopened", "resolved"], size=count)
    frame["waived"] = rng.random(count) < 0.02
    result.findings = frame.reset_index(drop=True)
    rules = sorted(frame["rule_id"].unique())
    started = result.started_at
    trend = [{"run_id": f"run{back:02d}", "started_at": started - dt.timedelta(days=back),
              "rule_id": rule, "open": int(rng.integers(1000, 20000))}
             for back in range(29, -1, -1) for rule in rules]  # fmt: skip
    result.trend = pd.DataFrame(trend)
    result.previous_run_id = "run01"
    return result


def render(result, name: str) -> str | bytes:
    from gridrecon.reports import machine
    from gridrecon.reports.html import render_html
    from gridrecon.reports.xlsx import render_xlsx

    return {
        "findings.json": machine.findings_json,
        "findings.csv": machine.findings_csv,
        "summary.json": machine.summary_json,
        "findings.xlsx": render_xlsx,
        "findings.xlsx by org": lambda r: render_xlsx(r, by="org"),
        "report.html": render_html,
    }[name](result)


def one(name: str, source: Path, keep: Path | None) -> None:
    """Child process: load the input, render once timed, once traced; print one line."""
    with source.open("rb") as handle:
        result = pickle.load(handle)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    began = time.perf_counter()
    content = render(copy.copy(result), name)
    seconds = time.perf_counter() - began
    tracemalloc.start()
    render(copy.copy(result), name)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    size = len(content.encode() if isinstance(content, str) else content)
    if keep:
        target = keep / name.replace(" ", "-")
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    print(
        f"{name:22} {seconds:8.2f} {peak / 2**20:12.0f} {rss - loaded:10.0f} {size / 2**20:10.1f}"
    )


def chromium_open(page: Path) -> None:
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)),
                   None)  # fmt: skip
    if not browser:
        print("chromium not installed: browser timing skipped")
        return
    with tempfile.TemporaryDirectory() as profile:
        flags = [browser, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--no-first-run", f"--user-data-dir={profile}", "--dump-dom"]  # fmt: skip
        timings = {}
        for label, url in (("blank", "about:blank"), ("report", page.as_uri())):
            began = time.perf_counter()
            out = subprocess.run(
                [*flags, url], capture_output=True, text=True, timeout=600, check=False
            )
            timings[label] = (time.perf_counter() - began, out.stdout)
    seconds, dom = timings["report"]
    found = re.search(r'data-ready-ms="(\d+)"', dom)
    in_page = f"{int(found.group(1)) / 1000:.1f} s" if found else "never (script did not finish)"
    print(
        f"chromium: report.html ready (parsed, first page of rows drawn) {in_page} after "
        f"navigation; chromium --dump-dom took {seconds:.1f} s in all, {timings['blank'][0]:.1f} s "
        "of it starting the browser, most of the rest serialising the page's data block"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="write the rendered files into this folder")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args.one, args.input, args.keep)
        return
    with tempfile.TemporaryDirectory() as scratch:
        keep = args.keep or Path(scratch)
        keep.mkdir(parents=True, exist_ok=True)
        began = time.perf_counter()
        result = build(args.findings)
        source = Path(scratch) / "result.pickle"
        with source.open("wb") as handle:
            pickle.dump(result, handle)
        print(f"{len(result.findings):,} findings built in {time.perf_counter() - began:.1f} s")
        print(f"{'format':22} {'seconds':>8} {'python peak':>12} {'RSS growth':>10} {'size':>10}")
        print(f"{'':22} {'':>8} {'MiB':>12} {'MiB':>10} {'MiB':>10}")
        for name in FORMATS:
            child = [sys.executable, __file__, "--one", name, "--input", str(source),
                     "--keep", str(keep)]  # fmt: skip
            subprocess.run(child, check=True)
        chromium_open(keep / "report.html")


if __name__ == "__main__":
    main()
