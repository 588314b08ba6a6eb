"""The HTTP application of ``textrnn serve`` (textrnn.serve.app), through Starlette's TestClient."""

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytest.importorskip("starlette", reason="the serve extra (starlette, uvicorn) is not installed")
pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx")

from starlette.testclient import TestClient  # noqa: E402

from textrnn.api import load  # noqa: E402
from textrnn.serve.app import create_app  # noqa: E402
from textrnn.serve.limits import Limits  # noqa: E402
from textrnn.serve.models import load_models  # noqa: E402

LIMITS = Limits(max_length=300, max_samples=4, max_prompt_chars=50, max_texts=3, max_text_chars=100,
                max_body_bytes=2000)


@pytest.fixture(scope="module")
def client(lm_run, int_clf):
    app = create_app(load_models([lm_run, int_clf], LIMITS), LIMITS)
    with TestClient(app) as c:  # (leaving it runs the app's shutdown: the batcher stops)
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
    assert client.get("/healthz").json() == {"status": "ok", "streams": 0}
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
    with TestClient(create_app(load_models([lm_run], LIMITS), LIMITS, event_interval=interval)) as client:
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
    *(("/classify", b, s, f) for b, s, f in [*TEXTS_BAD, ({"text": "a", "model": "run"}, 422, "model")]),
    *(("/evaluate", b, s, f) for b, s, f in [*TEXTS_BAD, ({"text": "a", "model": "clf"}, 422, "model"),
                                             ({"text": ""}, 422, "texts")]),
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
    response = client.post(path, content=raw)
    assert response.status_code == status, response.text
    assert response.json()["field"] is None and response.json()["error"]
    assert client.get("/healthz").json()["status"] == "ok"


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/nope").status_code == 404 and client.get("/nope").json()["error"] == "Not Found"
    assert client.get("/generate").status_code == 405 and "error" in client.get("/generate").json()


def test_a_failure_inside_is_a_500_and_the_server_goes_on(lm_run, int_clf, monkeypatch):
    models = load_models([lm_run, int_clf], LIMITS)
    with TestClient(create_app(models, LIMITS), raise_server_exceptions=False) as client:
        monkeypatch.setattr(models.served["clf"].trained, "predict_proba", lambda texts: 1 / 0)
        response = client.post("/classify", json={"text": "a"})
        assert response.status_code == 500 and response.json()["error"].startswith("the server failed")
        assert client.post("/generate", json={"length": 5}).status_code == 200
