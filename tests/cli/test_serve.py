"""``textrnn serve`` as a real process: concurrent streaming clients, a client that goes away,
SIGTERM, and the page in a real browser (headless Chromium)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from conftest import one_line_error, run_cli
from textrnn.api import load

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the serve extra (starlette, uvicorn) is not installed")
httpx = pytest.importorskip("httpx", reason="the serve tests' client is httpx")

REPO = Path(__file__).resolve().parents[2]


class Server:
    """``textrnn serve --port 0 ARGS`` in a process of its own (stderr to a file), at ``url``."""

    def __init__(self, tmp_path, *args):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        self.log = tmp_path / "server.log"
        with open(self.log, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "textrnn", "serve", "--port", "0", *args],
                                         stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        line = self.proc.stdout.readline()  # the one line, once it listens (or nothing: it failed)
        found = re.search(r"http://127\.0\.0\.1:\d+", line)
        if not found:
            self.proc.kill()
            pytest.fail(f"the server did not start: {line!r} {self.log.read_text()}")
        self.url, self.line = found.group(0), line

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def server(lm_run, int_clf, tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"), "-c", str(lm_run), "-c", str(int_clf), "--max-length", "100000")
    yield s
    s.stop()


def events(lines):
    """(event, data) pairs from an SSE body's lines."""
    event = "message"
    for line in lines:
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            yield event, json.loads(line[6:])
            event = "message"


def test_the_start_line_names_the_models_and_the_url(server):
    assert server.line.startswith("serving run (language model), clf (classifier) at http://127.0.0.1:")


def test_concurrent_streaming_clients_get_their_seeds_text(server, lm_run):
    def stream(seed):
        start = time.perf_counter()
        first, text = None, []
        with httpx.stream("POST", server.url + "/generate", timeout=30,
                          json={"prompt": "First", "length": 400, "seed": seed, "stream": True}) as response:
            for event, data in events(response.iter_lines()):
                if event == "message":
                    first = first or time.perf_counter() - start
                    text.append(data["text"])
                else:
                    assert event == "done" and data["samples"][0]["text"] == "".join(text)
        return "".join(text), first

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(stream, range(8)))
    lm = load(lm_run)
    assert [text for text, _ in results] == [lm.generate("First", 400, seed=s) for s in range(8)]
    assert all(first < 5 for _, first in results)


def test_a_client_that_goes_away_frees_its_stream(server):
    with httpx.stream("POST", server.url + "/generate", json={"length": 100000, "stream": True}) as response:
        lines = response.iter_lines()  # (kept: a dropped iterator closes the response)
        next(lines)
        assert httpx.get(server.url + "/healthz").json()["streams"] == 1
    for _ in range(100):
        if httpx.get(server.url + "/healthz").json()["streams"] == 0:
            break
        time.sleep(0.05)
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok", "streams": 0, "admitted": 0, "queued": 0}


def test_sigterm_cuts_running_streams_cleanly_and_exits_0(lm_run, tmp_path):
    server = Server(tmp_path, "-c", str(lm_run), "--max-length", "100000000", "--shutdown-timeout", "1")
    got, started = {}, threading.Event()

    def stream():
        with httpx.stream("POST", server.url + "/generate", json={"length": 100000000, "stream": True},
                          timeout=30) as response:
            lines = []
            for line in response.iter_lines():  # a torn stream would raise here
                lines.append(line)
                started.set()
            got["events"] = list(events(lines))

    client = threading.Thread(target=stream)
    client.start()
    try:
        assert started.wait(30)
        sent = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(15) == 0, server.log.read_text()
        assert time.monotonic() - sent < 8
        client.join(10)
        assert got["events"][-1] == ("error", {"error": "the server is shutting down"})
        assert [e for e, _ in got["events"][:-1]] == ["message"] * (len(got["events"]) - 1)
        assert "Traceback" not in server.log.read_text(), server.log.read_text()
    finally:
        server.stop()


def test_without_the_extra_the_command_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # import uvicorn now fails
    monkeypatch.delitem(sys.modules, "textrnn.serve.app", raising=False)
    res = run_cli(["serve"])
    assert res.exit_code == 2 and "pip install 'textrnn[serve]'" in res.stderr


def test_bad_limits_are_usage_errors():
    res = run_cli(["serve", "--max-length", "0"])
    assert res.exit_code == 2 and res.stderr.strip() == "error: --max-length must be a positive integer, got 0"
    res = run_cli(["serve", "--event-interval", "-1"])
    assert res.exit_code == 2
    assert res.stderr.strip() == "error: --event-interval must be between 0 and 10 seconds, got -1.0"


def _browser():
    """Headless Chromium driven by Selenium, or a skip saying what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="the browser test needs selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        pytest.skip("the browser test needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver))


def test_the_page_streams_a_prompts_text_and_classifies_in_a_browser(server, lm_run):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.ID, "generate").is_displayed())
        field = lambda name: browser.find_element(By.ID, name)  # noqa: E731
        field("prompt").send_keys("First")
        for name, value in (("length", "3000"), ("seed", "4"), ("temperature", "1")):
            field(name).clear()
            field(name).send_keys(value)
        browser.execute_script("window.changes = 0; new MutationObserver(() => window.changes++)"
                               ".observe(arguments[0], {characterData: true, childList: true, subtree: true})",
                               field("output"))
        field("generate").click()
        wait.until(lambda b: field("generate-status").text.startswith(("done", "error")))
        assert field("generate-status").text == "done: 3000 tokens, seed 4"
        expected = "First" + load(lm_run).generate("First", 3000, seed=4)
        assert browser.execute_script("return arguments[0].textContent", field("output")) == expected
        assert browser.execute_script("return window.changes") > 2  # the text came in pieces
        field("text").send_keys("a great fine film")
        field("classify").click()
        wait.until(lambda b: field("label").text)
        assert re.fullmatch(r"1 \(\d+\.\d%\)", field("label").text), field("label").text
    finally:
        browser.quit()


def _idle(server, seconds=10.0):
    """Wait (bounded) until the server holds no stream and no slot; its last /healthz."""
    for _ in range(int(seconds / 0.05)):
        health = httpx.get(server.url + "/healthz").json()
        if health["streams"] == 0 and health["admitted"] == 0:
            break
        time.sleep(0.05)
    return health


def test_a_plain_generate_whose_client_goes_away_frees_its_streams(server):
    """A non-streaming /generate ran to its end (here 100,000 tokens x 4) after its client left."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.url + "/generate", json={"length": 100000, "num_samples": 4}, timeout=0.5)
    assert _idle(server)["admitted"] == 0


def test_other_sites_pages_are_refused(server):
    url = server.url + "/generate"
    assert httpx.post(url, content=b'{"length": 5}', headers={"Content-Type": "text/plain"}).status_code == 415
    assert httpx.post(url, json={"length": 5}, headers={"Host": "rebound.example:8000"}).status_code == 400
    assert httpx.post(url, json={"length": 5}, headers={"Origin": "http://evil.example"}).status_code == 403
    assert httpx.post(url, json={"length": 5}, headers={"Origin": server.url}).status_code == 200


def test_connections_beyond_max_connections_get_503(lm_run, tmp_path):
    server = Server(tmp_path, "-c", str(lm_run), "--max-connections", "2", "--max-length", "100000000")
    try:
        with httpx.Client(timeout=30) as a, httpx.Client(timeout=30) as b:
            with a.stream("POST", server.url + "/generate", json={"length": 100000000, "stream": True}) as held:
                lines = held.iter_lines()
                next(lines)
                assert b.get(server.url + "/healthz").status_code == 200  # the second connection
                refused = httpx.get(server.url + "/healthz")  # a third
                assert refused.status_code == 503
        assert _idle(server)["admitted"] == 0
    finally:
        server.stop()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_a_shutdown_timeout_that_is_not_a_number_of_seconds_is_a_usage_error(value):
    """--shutdown-timeout nan was a traceback (int(nan) when the server was being set up)."""
    one_line_error(run_cli(["serve", "--shutdown-timeout", value]), "--shutdown-timeout must be a number of seconds")


def test_an_import_error_that_is_not_the_extras_propagates(monkeypatch):
    """Only a missing web library means "install the serve extra"; any other ImportError inside the
    server's modules is a bug, and was reported as a missing extra."""
    monkeypatch.setitem(sys.modules, "textrnn.serve.jobs", None)  # import textrnn.serve.jobs now fails
    monkeypatch.delitem(sys.modules, "textrnn.serve.app", raising=False)
    with pytest.raises(ImportError) as e:
        run_cli(["serve"])
    assert e.value.name == "textrnn.serve.jobs"
