"""The HTTP application of ``textrnn serve`` (textrnn.serve.app), through Starlette's TestClient."""

import asyncio
import json
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from textrnn.api import load  # noqa: E402
from textrnn.serve.app import Hosts, create_app  # noqa: E402
from textrnn.serve.limits import Limits  # noqa: E402
from textrnn.serve.models import load_models  # noqa: E402

LIMITS = Limits(max_length=300, max_samples=4, max_prompt_chars=50, max_texts=3, max_text_chars=100,
                max_body_bytes=2000)
URL = "http://127.0.0.1:8000"  # (the server answers to its own names only: TestClient's "testserver" is not one)


def local_client(app, **kw):
    return TestClient(app, base_url=URL, **kw)


@pytest.fixture(scope="module")
def client(lm_run, int_clf):
    app = create_app(load_models([lm_run, int_clf], LIMITS), LIMITS)
    with local_client(app) as c:  # (leaving it runs the app's shutdown: the batcher stops)
        yield c


@pytest.fixture(scope="module")
def lm(lm_run):
    return load(lm_run)


def sse_events(text):
    """Server-sent events as (event, data) pairs; every event ends with a blank line."""
    assert text.endswith("\n\n"), text[-50:]
    events = []
    for block in text[:-2].split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        assert set(fields) <= {"event", "data"}, block
        events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def test_health_models_and_the_page(client):
    assert client.get("/healthz").json() == {"status": "ok", "streams": 0, "admitted": 0, "queued": 0}
    models = client.get("/models").json()["models"]
    assert [(m["name"], m["task"]) for m in models] == [("run", "lm"), ("clf", "classify")]
    assert models[0]["conditions"] is None and models[1]["labels"] == [0, 1]
    page = client.get("/")
    assert page.headers["content-type"].startswith("text/html")
    assert all(f'id="{i}"' in page.text for i in ("prompt", "generate", "output", "text", "classify", "label"))
    assert "http" not in page.text.replace("http://www.w3.org", "")  # nothing fetched from elsewhere


def test_generate_returns_generates_records(client, lm):
    response = client.post("/generate", json={"prompt": "First", "length": 80, "seed": 7, "num_samples": 2,
                                              "temperature": 0.9, "top_p": 0.95})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "run" and body["tokens"] == 160
    assert body["samples"] == list(lm.generate_many("First", 80, num_samples=2, seed=7, temperature=0.9, top_p=0.95))


def test_streamed_generation_is_server_sent_events_of_the_same_text(client):
    request = {"prompt": "First", "length": 120, "seed": 3}
    whole = client.post("/generate", json=request).json()
    with client.stream("POST", "/generate", json={**request, "stream": True}) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        text = response.read().decode()
    events = sse_events(text)
    assert [e for e, _ in events[:-1]] == ["message"] * (len(events) - 1) and len(events) > 2
    assert "".join(d["text"] for _, d in events[:-1]) == whole["samples"][0]["text"]
    assert events[-1] == ("done", whole)


def _stream_at_interval(lm_run, interval: float, request: dict) -> tuple[dict, list, float]:
    """A server with ``interval`` between events: the plain answer to ``request``, the events of
    the same request streamed, and the seconds the stream took."""
    with local_client(create_app(load_models([lm_run], LIMITS), LIMITS, event_interval=interval)) as client:
        whole = client.post("/generate", json=request).json()
        start = time.monotonic()
        with client.stream("POST", "/generate", json={**request, "stream": True}) as response:
            events = sse_events(response.read().decode())
        return whole, events, time.monotonic() - start


def test_a_stream_sends_at_most_one_event_per_event_interval(lm_run):
    """With a 1 s interval a stream sends its first event at once, then at most one a second (a
    tiny model's 120 tokens: one event per step without the interval); the text is the same."""
    whole, events, elapsed = _stream_at_interval(lm_run, 1.0, {"prompt": "First", "length": 120, "seed": 3})
    messages = [d["text"] for e, d in events if e == "message"]
    assert 1 <= len(messages) <= 1 + math.ceil(elapsed) and events[-1] == ("done", whole)
    assert "".join(messages) == whole["samples"][0]["text"]


def test_a_stream_ends_when_its_job_ends_not_after_the_event_interval(lm_run):
    """The pause between two events is cut short by the job's end: a 10 s interval does not hold
    back the end of a stream that takes well under a second (it used to, by up to 10 s)."""
    whole, events, elapsed = _stream_at_interval(lm_run, 10.0, {"prompt": "First", "length": 60, "seed": 4})
    assert elapsed < 5.0 and events[-1] == ("done", whole)
    assert "".join(d["text"] for e, d in events if e == "message") == whole["samples"][0]["text"]


def test_concurrent_requests_get_their_own_text(client, lm):
    seeds = range(20, 26)

    def stream(seed):
        with client.stream("POST", "/generate", json={"prompt": "a", "length": 150, "seed": seed,
                                                      "stream": True}) as response:
            return "".join(d["text"] for e, d in sse_events(response.read().decode()) if e == "message")

    with ThreadPoolExecutor(len(seeds)) as pool:
        texts = list(pool.map(stream, seeds))
    assert texts == [lm.generate("a", 150, seed=s) for s in seeds]


def test_classify_gives_labels_and_probabilities(client, int_clf):
    clf = load(int_clf)
    texts = ["a great fine film", "a bad dull film"]
    body = client.post("/classify", json={"texts": texts}).json()
    assert body["model"] == "clf" and body["labels"] == [0, 1]
    assert [(r["label"], pytest.approx(r["probability"], abs=1e-6)) for r in body["results"]] == clf.classify(texts)
    assert all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in body["results"])
    one = client.post("/classify", json={"text": texts[0], "model": "clf"}).json()["results"][0]
    alone_or_not = body["results"][0]  # (the same up to float rounding: a batch of other rows rounds differently)
    assert one["label"] == alone_or_not["label"]
    assert one["probabilities"] == pytest.approx(alone_or_not["probabilities"], abs=1e-6)


def test_classify_labels_texts_below_min_confidence_uncertain(client, int_clf):
    texts = ["a great fine film", "a bad dull film", "film"]
    plain = client.post("/classify", json={"texts": texts}).json()["results"]
    p = sorted(r["probability"] for r in plain)[1]  # the middle one: one row below it
    got = client.post("/classify", json={"texts": texts, "min_confidence": p}).json()["results"]
    assert [r["label"] for r in got] == [r["label"] if r["probability"] >= p else "uncertain" for r in plain]
    assert sum(r["label"] == "uncertain" for r in got) == 1
    assert [r["probability"] for r in got] == [r["probability"] for r in plain]  # (the probability is kept)
    assert load(int_clf).classify(texts, min_confidence=p) == [(r["label"], pytest.approx(r["probability"], abs=1e-6))
                                                               for r in got]


def test_evaluate_scores_each_text_as_evaluate_per_line_does(client, lm, tmp_path):
    texts = ["First Citizen:", "Speak, speak.\n"]
    body = client.post("/evaluate", json={"texts": texts}).json()
    path = tmp_path / "lines.txt"
    path.write_text("".join(t if t.endswith("\n") else t + "\n" for t in texts))
    rows = lm.evaluate(path, per_line=True)[0]["per_line"]
    for got, want in zip(body["results"], rows):
        assert got["tokens"] == want["tokens"] and got["nats"] == pytest.approx(want["nats"], rel=1e-5)
        assert got["loss"] == pytest.approx(want["nats"] / (want["tokens"] - 1), rel=1e-5)
        assert got["bits_per_char"] == pytest.approx(want["bits_per_char"], rel=1e-5)


GENERATE_BAD = [
    ({"length": "long"}, 422, "length"), ({"length": 301}, 422, "length"), ({"temperature": -1}, 422, "temperature"),
    ({"top_p": 2}, 422, "top_p"), ({"top_k": 1.5}, 422, "top_k"), ({"num_samples": 5}, 422, "num_samples"),
    ({"seed": "1"}, 422, "seed"), ({"prompt": ["a"]}, 422, "prompt"), ({"prompt": "\u0416"}, 422, "prompt"),
    ({"prompt": "a" * 51}, 422, "prompt"), ({"model": "nope"}, 404, "model"), ({"model": "clf"}, 422, "model"),
    ({"condition": "up"}, 422, "condition"), ({"colour": "red"}, 422, "colour"), ({"stream": "yes"}, 422, "stream"),
]
TEXTS_BAD = [({"texts": "a"}, 422, "texts"), ({"texts": ["a"] * 4}, 422, "texts"), ({"texts": [1]}, 422, "texts[0]"),
             ({"text": "a" * 101}, 422, "text"), ({}, 422, "texts"), ({"text": "a", "model": "nope"}, 404, "model")]


@pytest.mark.parametrize("path, body, status, field", [
    *(("/generate", b, s, f) for b, s, f in GENERATE_BAD),
    *(("/classify", b, s, f) for b, s, f in [*TEXTS_BAD, ({"text": "a", "model": "run"}, 422, "model"),
                                             ({"text": "a", "min_confidence": 1}, 422, "min_confidence"),
                                             ({"text": "a", "min_confidence": "0.5"}, 422, "min_confidence")]),
    *(("/evaluate", b, s, f) for b, s, f in [*TEXTS_BAD, ({"text": "a", "model": "clf"}, 422, "model"),
                                             ({"text": ""}, 422, "texts"),
                                             ({"text": "a", "min_confidence": 0.5}, 422, "min_confidence")]),
])
def test_bad_requests_get_a_json_error_naming_the_field(client, path, body, status, field):
    response = client.post(path, json=body)
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and response.json()["error"]
    assert client.get("/healthz").json()["status"] == "ok"


@pytest.mark.parametrize("path", ["/generate", "/classify", "/evaluate"])
@pytest.mark.parametrize("raw, status", [(b"{not json", 400), (b"[1, 2]", 400), (b'{"length": Infinity}', 400),
                                         (b"\xff\xfe", 400), (b"[" * 1500, 400), (b" " * 2001, 413)])
def test_bodies_that_are_not_json_or_too_large(client, path, raw, status):
    response = client.post(path, content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["field"] is None and response.json()["error"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/nope").status_code == 404 and client.get("/nope").json()["error"] == "Not Found"
    assert client.get("/generate").status_code == 405 and "error" in client.get("/generate").json()


def test_a_failure_inside_is_a_500_and_the_server_goes_on(lm_run, int_clf, monkeypatch):
    models = load_models([lm_run, int_clf], LIMITS)
    with local_client(create_app(models, LIMITS), raise_server_exceptions=False) as client:
        monkeypatch.setattr(models.served["clf"].trained, "predict_proba", lambda texts: 1 / 0)
        response = client.post("/classify", json={"text": "a"})
        assert response.status_code == 500 and response.json()["error"].startswith("the server failed")
        assert client.post("/generate", json={"length": 5}).status_code == 200


# -- what other sites' pages cannot do (issue 23, defect 7) ------------------------------------------
@pytest.mark.parametrize("kind", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_a_post_body_must_be_sent_as_json(client, kind):
    """A page of any site may POST text/plain (or a form) to 127.0.0.1 without asking first; only
    application/json needs the server's consent (a preflight it does not give)."""
    headers = {} if kind is None else {"Content-Type": kind}
    for path in ("/generate", "/classify", "/evaluate"):
        response = client.post(path, content=b'{"text": "a", "length": 5}', headers=headers)
        assert response.status_code == 415, response.text
        assert "Content-Type: application/json" in response.json()["error"]
    ok = client.post("/generate", content=b'{"length": 5}', headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


@pytest.mark.parametrize("host, status", [
    ("127.0.0.1:8000", 200), ("localhost:8000", 200), ("LOCALHOST", 200), ("[::1]:8000", 200),
    ("evil.example:8000", 400), ("127.0.0.1.evil.example", 400), ("10.0.0.5:8000", 400)])
def test_the_host_must_be_one_of_the_servers_names(client, host, status):
    """DNS rebinding: a page at evil.example that made its name point at 127.0.0.1 sends Host: evil.example."""
    for response in (client.get("/models", headers={"Host": host}),
                     client.post("/generate", json={"length": 5}, headers={"Host": host})):
        assert response.status_code == status, response.text
    if status == 400:
        assert "--allow-host" in response.json()["error"] and response.headers["connection"] == "close"


@pytest.mark.parametrize("origin, status", [("http://127.0.0.1:8000", 200), ("http://evil.example", 403),
                                            ("http://127.0.0.1:9999", 403), ("null", 403), ("file://", 403)])
def test_a_request_from_another_origin_is_refused(client, origin, status):
    response = client.post("/generate", json={"length": 5}, headers={"Origin": origin})
    assert response.status_code == status, response.text
    assert client.get("/models", headers={"Origin": origin}).status_code == status


def test_the_names_a_server_answers_to():
    loopback = Hosts.bound_to("127.0.0.1")
    assert all(loopback.allows(h) for h in ("127.0.0.1:8000", "localhost", "[::1]:1", "Localhost."))
    assert not any(loopback.allows(h) for h in ("evil.example", "192.168.1.5", "localhost.evil.example"))
    everywhere = Hosts.bound_to("0.0.0.0", ["box.lan"])
    assert all(everywhere.allows(h) for h in ("192.168.1.5:8000", "[fe80::1]", "localhost", "BOX.lan:8000"))
    assert not everywhere.allows("evil.example")
    one = Hosts.bound_to("192.168.1.5")
    assert one.allows("192.168.1.5:80") and not one.allows("localhost") and not one.allows("192.168.1.6")
    assert Hosts.bound_to("127.0.0.1", ["*"]).allows("anything.example")


# -- the app at the ASGI level: a client that goes away, a body that does not come -----------------
async def exchange(app, path, body, *, gone=None, stall=False, paused=None, timeout=20.0, spec="2.3"):
    """One POST to ``app``: ``body`` (bytes, or a list of chunks), then nothing more (``stall``: the
    body never ends) until ``gone`` (an asyncio.Event) is set and the client goes away. With
    ``paused`` (an asyncio.Event, set then) sending waits until then, as uvicorn's does while the
    client reads nothing. Once gone, what is sent is dropped (spec 2.3, uvicorn) or raises OSError
    (spec 2.4). Returns (status, headers, body) as the client got them (None, {}, b"": nothing),
    once the app is done, within ``timeout`` seconds."""
    chunks = list(body) if isinstance(body, list) else [body]
    messages = [{"type": "http.request", "body": c, "more_body": stall or k < len(chunks) - 1}
                for k, c in enumerate(chunks)]
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await (gone or asyncio.Event()).wait()
        return {"type": "http.disconnect"}

    async def send(message):
        if paused is not None and not gone.is_set():
            paused.set()
            await gone.wait()
        if gone is not None and gone.is_set():
            if spec == "2.4":
                raise OSError("the connection is closed")
            return
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": spec}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
             "headers": [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]}
    await asyncio.wait_for(app(scope, receive, send), timeout)
    start = next(m for m in sent if m["type"] == "http.response.start") if sent else {}
    return (start.get("status"), dict((k.decode(), v.decode()) for k, v in start.get("headers", [])),
            b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"))


async def until(condition, seconds=10.0):
    for _ in range(int(seconds / 0.01)):
        if condition():
            return True
        await asyncio.sleep(0.01)
    return condition()


LONG = Limits(max_length=10**8, body_timeout=1, max_queue=2)


@pytest.fixture
def lone(lm_run, int_clf):
    """An app of its own (no lifespan run: driven at the ASGI level) and its language model's batcher."""
    models = load_models([lm_run, int_clf], LONG)
    yield create_app(models, LONG), models
    models.close()


def test_a_plain_generate_whose_client_goes_away_is_cancelled(lone):
    """A non-streaming /generate used to run to its end (here 10**8 tokens) after its client left."""
    app, models = lone
    batcher = models.served["run"].batcher

    async def main():
        gone = asyncio.Event()
        task = asyncio.create_task(exchange(app, "/generate", json.dumps({"length": 10**8, "num_samples": 3}).encode(),
                                            gone=gone))
        assert await until(lambda: batcher.streams == 3)
        gone.set()
        assert await task == (None, {}, b"")
        assert await until(lambda: batcher.streams == 0 and batcher.admitted == 0)

    asyncio.run(main())


def test_a_stream_whose_client_left_before_it_started_is_cancelled(lone):
    """The client is gone when the streaming response starts, and sending its start raises (ASGI
    2.4 servers): the events' generator never ran, so the job, submitted already, ran on holding
    its stream. (Under uvicorn, ASGI 2.3, the generator does start: anyio delivers the cancel only
    once the response's task has begun; the response now cancels its job however it ends.)"""
    app, models = lone
    batcher = models.served["run"].batcher

    async def main():
        gone = asyncio.Event()
        gone.set()
        body = json.dumps({"length": 10**8, "stream": True}).encode()
        assert await exchange(app, "/generate", body, gone=gone, spec="2.4") == (None, {}, b"")
        assert await until(lambda: batcher.streams == 0 and batcher.admitted == 0), batcher.streams

    asyncio.run(main())


def test_a_body_that_does_not_arrive_in_time_is_refused(lone):
    app, models = lone

    async def main():
        start = time.monotonic()
        status, headers, body = await exchange(app, "/generate", [b'{"length": ', b"5"], stall=True, timeout=10)
        assert status == 408 and headers["connection"] == "close" and time.monotonic() - start < 5
        assert json.loads(body)["error"] == "the body did not arrive within 1 s (the server's --body-timeout)"

    asyncio.run(main())


def test_classify_and_evaluate_queue_within_max_queue_and_skip_gone_clients(lone, monkeypatch):
    """/classify and /evaluate queued without bound, and ran for clients that had left."""
    app, models = lone
    clf = models.served["clf"].trained
    release, calls = threading.Event(), []
    predict = clf.predict_proba

    def slow_predict(texts):
        calls.append(texts)
        release.wait(20)
        return predict(texts)

    monkeypatch.setattr(clf, "predict_proba", slow_predict)
    body = json.dumps({"text": "a great film"}).encode()

    async def main():
        running = asyncio.create_task(exchange(app, "/classify", body))
        assert await until(lambda: len(calls) == 1)
        gone = asyncio.Event()
        waiting = asyncio.create_task(exchange(app, "/evaluate", json.dumps({"text": "First"}).encode(), gone=gone))
        await asyncio.sleep(0.1)
        status, _, refused = await exchange(app, "/classify", body)
        assert status == 503 and "--max-queue" in json.loads(refused)["error"]
        gone.set()
        assert (await asyncio.wait_for(waiting, 5))[0] is None  # it leaves the queue, not run
        release.set()
        assert (await running)[0] == 200
        assert (await exchange(app, "/classify", body))[0] == 200 and len(calls) == 2

    try:
        asyncio.run(main())
    finally:
        release.set()


# -- a failure is the server's: 500 (issue 23, defect 8) -----------------------------------------
class _Failing:
    def __init__(self, stepper):
        self.stepper = stepper

    def __call__(self, ids, *rest):
        raise RuntimeError("a step that cannot be run (simulated)")

    def __getattr__(self, name):
        return getattr(self.stepper, name)


def test_a_generation_that_fails_is_a_500_not_a_503(lm_run):
    models = load_models([lm_run], LIMITS)
    batcher = models.served["run"].batcher
    with local_client(create_app(models, LIMITS)) as client:
        batcher._stepper = _Failing(batcher._stepper)
        response = client.post("/generate", json={"length": 5})
        assert response.status_code == 500 and "generation failed" in response.json()["error"]
        with client.stream("POST", "/generate", json={"length": 5, "stream": True}) as streamed:
            events = sse_events(streamed.read().decode())
        assert events[-1][0] == "error" and "generation failed" in events[-1][1]["error"]
        batcher._stepper = batcher._stepper.stepper
        assert client.post("/generate", json={"length": 5}).status_code == 200
        assert client.get("/healthz").json()["admitted"] == 0
