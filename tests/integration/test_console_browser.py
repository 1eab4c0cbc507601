"""The web console in a real browser (Debian's Chromium, headless, driven by selenium through chromium-driver),
end to end on the MariaDB sandboxes: the forward instance shows Running; Cancel in the confirmation dialog does
nothing; a wrong token changes nothing; Create Reverse Task -> Collecting; Switchover under a small write load ->
the active side flips with zero client errors. SY_UPDATE_SCREENSHOT=1 also saves the tasks view as docs/console.png."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from test_forward_mariadb import fresh  # noqa: F401 (fixture)
from helpers import APP_PASSWORD, APP_USER, app_conn, app_user, one, reverse, wait_for, wait_state

pytestmark = pytest.mark.nosan   # the console API and its daemon paths run under ASan in test_console.py; here a browser only adds time


webdriver = pytest.importorskip("selenium.webdriver", reason="python3-selenium (scripts/install-deps.sh)")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TOKEN = "browser-token-5f1c2a9e"
REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.fail("chromium and chromium-driver are missing: run scripts/install-deps.sh", pytrace=False)
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,820",
              "--disable-extensions", "--no-first-run"):
        o.add_argument(a)
    o.binary_location = chromium
    b = webdriver.Chrome(service=Service(driver), options=o)
    yield b
    b.quit()


class Load:
    """Autocommit INSERTs through the proxy in a thread; counts what the client saw fail."""

    def __init__(self, d, db):
        self.c = app_conn(d, db)
        self.n = self.errors = 0
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                one(self.c, "INSERT INTO t (v) VALUES (%s)", (self.n,))
                self.n += 1
            except Exception as e:  # noqa: BLE001 (any client error counts)
                self.errors += 1
                self.last = e
            time.sleep(0.01)

    def close(self):
        self.stop.set()
        self.t.join(10)
        self.c.close()


def test_console_in_chromium_create_reverse_and_switchover(daemon, mariadb_pair, fresh, tmp_path, browser):  # noqa: F811
    b_db = mariadb_pair.business
    b_db.sql("CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)", database=fresh)
    b_db.sql("INSERT INTO t (v) VALUES (1),(2),(3)", database=fresh)
    app_user(mariadb_pair, fresh)
    tok = tmp_path / "console.token"
    tok.write_text(TOKEN + "\n")
    os.chmod(tok, 0o600)
    port = free_port()
    pname = f"b{fresh}"
    d = daemon(pair=pname, objects=f"{fresh}.*",
               global_opts={"console": f"127.0.0.1:{port}", "console_token_file": str(tok)})
    br = browser
    wait = WebDriverWait(br, 60, poll_frequency=0.2)
    br.get(f"http://127.0.0.1:{port}/")

    # Auto refresh redraws the tasks view every 2 s: an element found just before a redraw is stale, so each
    # read or click is retried on a fresh lookup (as a user's second click would be).
    def fresh_el(css, fn):
        for _ in range(20):
            try:
                els = br.find_elements(By.CSS_SELECTOR, css)
                return fn(els[0]) if els else None
            except StaleElementReferenceException:
                continue
        raise AssertionError(f"{css} kept going stale")

    def status_text(direction):
        return fresh_el(f'tr[data-instance="{pname}/{direction}"] td.status', lambda e: e.text)

    def pair_text(cls):
        return fresh_el(f'section[data-pair="{pname}"] .{cls}', lambda e: e.text)

    def click_action(action, confirm=True, **sel):
        key, val = next(iter(sel.items()))
        assert fresh_el(f'button[data-action="{action}"][data-{key}="{val}"]', lambda e: e.click() or True)
        wait.until(lambda _: br.find_element(By.ID, "confirm").get_attribute("open") is not None)
        assert br.find_element(By.ID, "confirm-note").text          # the Note box says what will happen
        br.find_element(By.ID, "confirm-ok" if confirm else "confirm-cancel").click()

    def set_token(t):
        f = br.find_element(By.ID, "token")
        f.clear()
        f.send_keys(t)

    wait.until(lambda _: status_text("forward") == "Running")
    assert pair_text("active-side") == "business"
    # sysbench's tables, made through the proxy, reach DR through the forward instance
    sb = ["--db-driver=mysql", "--mysql-host=127.0.0.1", f"--mysql-port={d.port}", f"--mysql-user={APP_USER}",
          f"--mysql-password={APP_PASSWORD}", f"--mysql-db={fresh}", "--tables=2", "--table-size=200"]
    r = subprocess.run(["sysbench", "oltp_read_write", *sb, "prepare"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    wait_for(lambda: mariadb_pair.dr.sql("SELECT COUNT(*) FROM sbtest2", database=fresh) == [["200"]]
             if mariadb_pair.dr.sql(f"SHOW TABLES FROM `{fresh}` LIKE 'sbtest2'") else False,
             timeout=60, what="sysbench's tables on DR")

    # View Details: the forward precheck's checks, each with its status.
    assert fresh_el(f'button[data-details="{pname}/forward"]', lambda e: e.click() or True)
    wait.until(lambda _: fresh_el("tr.details", lambda e: e.text) is not None)
    assert "pass" in fresh_el("tr.details", lambda e: e.text)
    assert fresh_el(f'button[data-details="{pname}/forward"]', lambda e: e.click() or True)   # and closed again
    wait.until(lambda _: fresh_el("tr.details", lambda e: e.text) is None)

    # Cancel in the dialog sends nothing.
    click_action("pause", confirm=False, instance=f"{pname}/forward")
    time.sleep(0.5)
    assert status_text("forward") == "Running" and wait_state(d, pname, "running")

    # A wrong token: refused, nothing done.
    set_token("not-the-token")
    click_action("create-reverse", pair=pname)
    wait.until(lambda _: "forbidden" in br.find_element(By.ID, "result").text)
    assert reverse(d, pname) is None
    assert status_text("reverse") is None

    # The right token: Create Reverse Task -> Collecting.
    set_token(TOKEN)
    click_action("create-reverse", pair=pname)
    wait.until(lambda _: status_text("reverse") == "Collecting")

    # Switchover under sysbench oltp_read_write and an insert client: the active side flips, no client error.
    load = Load(d, fresh)
    bench = subprocess.Popen(["sysbench", "oltp_read_write", *sb, "--threads=2", "--time=0", "--events=0",
                              "--report-interval=0", "run"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    try:
        wait.until(lambda _: load.n >= 20)
        click_action("switchover", pair=pname)
        wait.until(lambda _: pair_text("active-side") == "dr")
        n_at_flip = load.n
        wait.until(lambda _: load.n >= n_at_flip + 20)
    finally:
        load.close()
        bench.terminate()
        out, _ = bench.communicate(timeout=30)
    assert load.errors == 0, getattr(load, "last", None)
    assert "FATAL" not in out and "error" not in out.lower().replace("errors:", ""), out[-2000:]
    assert "switchover: done" in br.find_element(By.ID, "result").text.lower()
    assert pair_text("epoch") == "2"
    wait.until(lambda _: "Last switchover" in (pair_text("switch") or ""))
    st = d.pair_status(pname)
    assert st["active_side"] == "dr" and st["epoch"] == 2
    wait.until(lambda _: status_text("reverse") == "Running")
    br.find_element(By.ID, "result-close").click()
    assert fresh_el(f'button[data-history="{pname}"]', lambda e: e.click() or True)
    wait.until(lambda _: "done" in (pair_text("history") or ""))
    assert "switchover" in pair_text("history")
    shot = tmp_path / "console.png"
    br.save_screenshot(str(shot))
    assert shot.stat().st_size > 10000
    if os.environ.get("SY_UPDATE_SCREENSHOT"):
        shutil.copy(shot, REPO / "docs" / "console.png")
