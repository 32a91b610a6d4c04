#!/usr/bin/env python3
"""Browser tests of the `cdfsync serve` console (docs/serve.md, Console), in headless Chromium.

Starts the simulator on the demo workspace and `cdfsync serve` with an API token in a fresh directory, then clicks
through as an administrator would: sign in, add a connection (secret write-only), test it, discover the catalog,
create a pipeline from the suggestions, check its types, preview it, save it, run it now, open the run's audit
record, replay it as a dry run, and on a pipeline with an activation: its preview, a run that holds the
invitations, the confirmation screen, a run that sends them, the invitation ledger, deactivation. Drives Debian's chromium through its chromium-driver (/usr/bin/chromedriver);
nothing is downloaded.

    python3 tools/console_test.py --bin .build/debug [--screenshots docs/images]

Prints one line per check and a final `N passed, N failed`; exits 1 when any check failed.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOKEN = "console-test-token-0123456789abcdef"
WAREHOUSE = "8a1c2f3d4e5b6a70"
TABLE = "main.research.participants"


class Checks:
    def __init__(self):
        self.passed = 0
        self.failed = 0

    def check(self, name, condition, detail=""):
        if condition:
            self.passed += 1
            print(f"ok    {name}")
        else:
            self.failed += 1
            print(f"FAIL  {name} {detail}")
        return condition


def start(args, cwd, env, log):
    """Starts a process whose first stdout line announces its address; returns (process, URL)."""
    out = open(log, "w")
    p = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=out, text=True)
    seen = []
    for _ in range(50):
        line = p.stdout.readline()
        if not line:
            break
        seen.append(line)
        m = re.search(r"listening on (http://127\.0\.0\.1:\d+)", line)
        if m:
            # Keep reading what it prints, so a full pipe never blocks it.
            threading.Thread(target=lambda: [out.write(l) for l in p.stdout], daemon=True).start()
            return p, m.group(1)
    p.kill()
    raise SystemExit(f"{args[0]} did not start: {seen!r}; see {log}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bin", required=True, help="directory holding the built cdfsync and dbsql-sim")
    parser.add_argument("--screenshots", help="write PNG screenshots of the main screens into this directory")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="cdfsync-console-")
    for d in ("pipelines", "config"):
        os.makedirs(os.path.join(work, d))
    env = {"PATH": "/usr/bin:/bin", "HOME": work, "CDFSYNC_API_TOKEN": TOKEN}
    sim, sim_url = start([os.path.join(args.bin, "dbsql-sim"), "--workspace",
                          os.path.join(ROOT, "fixtures/demo-workspace.json"), "--port", "0"],
                         work, env, os.path.join(work, "sim.log"))
    serve, url = start([os.path.join(args.bin, "cdfsync"), "serve", "--pipelines", os.path.join(work, "pipelines"),
                        "--port", "0", "--state-dir", os.path.join(work, "state"), "--config-dir",
                        os.path.join(work, "config"), "--token-env", "CDFSYNC_API_TOKEN"],
                       work, env, os.path.join(work, "serve.log"))
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                 "--disable-gpu", f"--user-data-dir={work}/chromium"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    c = Checks()
    wait = WebDriverWait(driver, 60, ignored_exceptions=(StaleElementReferenceException,))

    def shot(name):
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            driver.save_screenshot(os.path.join(args.screenshots, f"console-{name}.png"))

    def by_id(i):
        return wait.until(EC.presence_of_element_located((By.ID, i)))

    def click(i):
        wait.until(EC.element_to_be_clickable((By.ID, i))).click()

    def text_of(i):
        for _ in range(20):
            try:
                return by_id(i).text
            except StaleElementReferenceException:
                time.sleep(0.1)
        return ""

    try:
        # Sign in: the console asks for the token, and the session cookie is not readable by scripts.
        driver.get(url + "/")
        wait.until(EC.url_contains("/login"))
        c.check("console redirects to the login page", "/login" in driver.current_url)
        by_id("token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        by_id("pipelines")
        c.check("signed in: pipelines overview", "Pipelines" in driver.find_element(By.TAG_NAME, "h2").text)
        c.check("session cookie is HttpOnly (invisible to scripts)",
                "cdfsync_session" not in driver.execute_script("return document.cookie"))
        cookie = driver.get_cookie("cdfsync_session")
        c.check("session cookie is SameSite=Strict and not the token",
                cookie is not None and cookie.get("sameSite") == "Strict" and TOKEN not in cookie["value"],
                str(cookie))

        # Add a connection; its secret is write-only.
        click("nav-connections")
        by_id("add-connection")
        by_id("conn-name").send_keys("sim")
        by_id("conn-host").send_keys(sim_url)
        by_id("conn-warehouse").send_keys(WAREHOUSE)
        by_id("conn-secret").send_keys("dapi-demo-token")
        click("conn-add")
        row = by_id("connection-sim")
        c.check("connection added", "stored encrypted" in row.text, row.text)
        c.check("the secret is not on the page", "dapi-demo-token" not in driver.page_source)

        # Test it: every step ✓.
        click("test-button-sim")
        by_id("test-passed-sim")
        steps = driver.find_elements(By.CSS_SELECTOR, "#steps-sim li.ok")
        c.check("connection test: every step passed", len(steps) == 5, text_of("steps-sim"))
        shot("connections")

        # Discover: catalog → schema → table with its CDF flag, latest version and columns.
        click("nav-discover")
        click("discover-button")
        table = by_id("table-" + TABLE)
        c.check("discovery shows the table with CDF on", "CDF on" in table.text, table.text)
        c.check("discovery shows its latest version", re.search(r"\bv\d+\b", table.text) is not None, table.text)
        c.check("discovery lists its columns", "participant_id" in text_of("tree"))
        shot("discover")

        # A pipeline from the suggestions of pipeline init.
        click("new-pipeline-" + TABLE)
        by_id("mapping")
        key = Select(by_id("map-external_id")).first_selected_option.get_attribute("value")
        c.check("the suggested external id is participant_id", key == "participant_id", key)
        name = by_id("draft-name")
        name.clear()
        name.send_keys("console-panel")
        Select(by_id("draft-schedule")).select_by_value("daily")
        click("draft-apply")
        wait.until(lambda d: "schedule: daily" in text_of("draft-yaml"))
        click("draft-check")
        result = by_id("check-result")
        c.check("type checks pass", "Every check passed" in result.text, text_of("draft-checks"))
        click("draft-preview-button")
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")) > 0)
        rows = driver.find_elements(By.CSS_SELECTOR, "#preview-table tbody tr")
        c.check("preview shows mapped rows", len(rows) > 0 and "participant" in rows[0].text, rows[0].text)
        c.check("the file says schedule: daily", "schedule: daily" in text_of("draft-yaml"))
        shot("editor")
        click("draft-save")
        wait.until(EC.url_contains("#/pipelines"))
        by_id("pipeline-console-panel")
        c.check("the saved pipeline is in the overview",
                os.path.exists(os.path.join(work, "pipelines", "console-panel.yaml")))

        # Run now, then its record.
        click("run-console-panel")
        wait.until(lambda d: "succeeded" in text_of("last-run-console-panel")
                   if d.find_elements(By.ID, "last-run-console-panel") else False)
        c.check("run now: the run succeeded", "succeeded" in text_of("last-run-console-panel"))
        row = text_of("pipeline-console-panel")
        c.check("the overview shows the checkpoint and the freshness",
                re.search(r"\bv\d+\b", row) is not None and re.search(r"\b\d+ (s|min|h|d)\b", row) is not None, row)
        shot("pipelines")
        click("last-run-console-panel")
        by_id("run-record")
        counts = text_of("run-counts")
        read = re.search(r"read (\d+)", counts)
        c.check("the run's audit record shows its counts", read is not None and int(read.group(1)) > 0, counts)
        shot("run")

        # Replay: a dry run first, with what it would change, then the confirmation for the real one.
        driver.get(url + "/#/pipeline/console-panel")
        by_id("replay-from")
        click("replay-dry-run")
        diff = by_id("dry-run-diff")
        c.check("replay dry run shows what it would change", "would create" in diff.text and "unchanged" in diff.text,
                diff.text)
        c.check("the real replay asks for confirmation", "Replay for real" in text_of("replay-confirm"))
        shot("replay")
        click("replay-for-real")
        done = by_id("replay-done")
        c.check("the replay ran after confirmation", "created" in done.text, done.text)

        # Activation: a pipeline with `activation: {invite_study: …}` (the saved pipeline's file under another name,
        # with its own state directory, so that its participants are new to its panel). The preview before any run,
        # a run that holds the invitations, the confirmation screen, a run that sends them, the ledger.
        text = open(os.path.join(work, "pipelines", "console-panel.yaml")).read().replace("console-panel",
                                                                                          "console-invites")
        lines = [line for line in text.split("\n") if not re.match(r"(state_dir|schedule|activation):", line)]
        lines += ["state_dir: " + json.dumps(os.path.join(work, "state-invites")),
                  "activation:", "  invite_study: S-2026-04", ""]
        with open(os.path.join(work, "pipelines", "console-invites.yaml"), "w") as f:
            f.write("\n".join(lines))
        driver.get(url + "/#/pipeline/console-invites")
        c.check("activation panel: not confirmed before any run", text_of("activation-standing") == "unconfirmed",
                text_of("activation"))
        fresh = int(text_of("preview-source-would-invite"))
        c.check("the preview reads the source: participants would be invited", fresh > 0, text_of("activation"))
        click("run-console-invites")

        def held_now():
            driver.refresh()
            n = text_of("preview-held-would-send")
            return int(n) if n.isdigit() and int(n) > 0 else False
        held = wait.until(lambda d: held_now())
        c.check("a run while unconfirmed holds the invitations (at least those of the previewed rows)", held >= fresh,
                f"{held} held, {fresh} previewed")
        shot("activation")
        click("activation-confirm-open")
        summary = text_of("activation-summary")
        c.check("the confirmation screen summarises what confirming does",
                "invite to study S-2026-04" in summary and f"{held} held invitation" in summary, summary)
        shot("activate")
        click("activation-confirm")
        wait.until(EC.url_contains("#/pipeline/console-invites"))
        wait.until(lambda d: text_of("activation-standing") == "confirmed")
        state = text_of("activation-state")
        c.check("confirmed, by the serve process's user from the console", "(console)" in state, state)
        c.check("the confirmation released the held invitations", f"released {held} held" in text_of("message"),
                text_of("message"))
        click("run-console-invites")

        def sent_now():
            driver.get(url + "/#/invitations/console-invites/sent/0")
            driver.refresh()
            rows = d_rows()
            return rows if rows else False

        def d_rows():
            by_id("invitation-filters")
            return driver.find_elements(By.CSS_SELECTOR, "#invitations tbody tr")
        rows = wait.until(lambda d: sent_now())
        c.check("the next run sent them: the ledger lists them as sent",
                len(rows) == min(held, 100) and all(r.text.startswith("sent") for r in rows), f"{len(rows)} rows")
        c.check("the ledger counts them", text_of("invitations-sent") == f"{held} sent", text_of("invitations-sent"))
        shot("invitations")
        driver.get(url + "/#/pipeline/console-invites")
        click("activation-deactivate")
        wait.until(lambda d: text_of("activation-standing") == "deactivated")
        c.check("deactivate stops the invitations", "Deactivated" in text_of("activation-state"))

        # Conflicts screen.
        click("nav-conflicts")
        c.check("conflicts screen", wait.until(
            lambda d: "Identity conflicts" in d.find_element(By.TAG_NAME, "h2").text))
        c.check("no secret anywhere in the page", "dapi-demo-token" not in driver.page_source
                and TOKEN not in driver.page_source)
    except (TimeoutException, Exception) as e:  # noqa: BLE001 — any failure is a failed check, with the page
        c.check("console flow", False, f"{type(e).__name__}: {e}")
        traceback.print_exc()
        print(driver.page_source[:3000])
    finally:
        driver.quit()
        serve.terminate()
        try:
            c.check("cdfsync serve exits 0 on SIGTERM", serve.wait(timeout=60) == 0)
        except subprocess.TimeoutExpired:
            serve.kill()
            c.check("cdfsync serve exits 0 on SIGTERM", False, "still running 60 s after SIGTERM")
        sim.terminate()
        sim.wait(timeout=30)
        if c.failed and os.path.exists(os.path.join(work, "serve.log")):
            print(open(os.path.join(work, "serve.log")).read()[-4000:])
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"console: {c.passed} passed, {c.failed} failed")
    return 1 if c.failed else 0


if __name__ == "__main__":
    sys.exit(main())
