"""The serving engine (textrnn.serve.batcher, .requests, .models): batched stepping, and what
a request may ask for. No web libraries needed."""

import threading

import pytest

from textrnn.api import load
from textrnn.errors import TextRNNError
from textrnn.serve.batcher import PREFILL_CHUNK, SHUTTING_DOWN, Batcher
from textrnn.serve.jobs import Job
from textrnn.serve.limits import Limits
from textrnn.serve.models import load_models
from textrnn.serve.requests import RequestError, Sampling, parse_generate, parse_json, parse_texts
from textrnn.training.lm import train_language_model


@pytest.fixture(scope="module")
def lm(lm_run):
    return load(lm_run)


@pytest.fixture(scope="module")
def batcher(lm):
    b = Batcher(lm, max_streams=64)
    yield b
    b.close()


OTHERS = [dict(temperature=0.7, top_k=3), dict(greedy=True), dict(top_p=0.8), dict(temperature=1.3),
          dict(top_k=5, top_p=0.9, temperature=0.9)]


def solo(lm, prompt, length, **options):
    """What ``textrnn generate`` gives for these options (one sample)."""
    return lm.generate(prompt, length, **options)


@pytest.mark.parametrize("options", [dict(seed=1), dict(seed=2, temperature=0.8, top_p=0.9),
                                     dict(seed=3, top_k=4), dict(greedy=True)])
def test_a_seeded_request_gives_generates_text_alone_and_among_others(lm, batcher, options):
    expected = solo(lm, "First", 300, **options)
    assert batcher.submit(Sampling(prompt="First", length=300, **options)).result(10) == [expected]
    others = [batcher.submit(Sampling(prompt=p, length=400, seed=10 + k, **o))
              for k, (p, o) in enumerate(zip(["a", "The ", "", "Citizen", "o"], OTHERS))]
    crowded = batcher.submit(Sampling(prompt="First", length=300, **options))
    assert crowded.result(10) == [expected]
    for job, (p, o), k in zip(others, zip(["a", "The ", "", "Citizen", "o"], OTHERS), range(5)):
        assert job.result(10) == [solo(lm, p, 400, seed=10 + k, **o)]
    assert batcher.streams == 0


def test_streams_join_and_leave_between_steps(lm, batcher):
    long = batcher.submit(Sampling(prompt="First", length=4000, seed=5))
    assert long.wait(10)
    late = batcher.submit(Sampling(prompt="Second", length=100, seed=6, num_samples=3))
    texts = late.result(10)
    assert long.tokens < 4000, "the late request should have joined while the long one ran"
    assert texts == [solo(lm, "Second", 100, seed=6 + j) for j in range(3)]
    assert [r["seed"] for r in late.records()] == [6, 7, 8]
    assert long.result(10) == [solo(lm, "First", 4000, seed=5)]


def test_a_long_prompt_runs_in_chunks_beside_the_running_streams(lm, batcher, tiny_corpus):
    prompt = tiny_corpus.read_text()[: PREFILL_CHUNK * 3 + 5]  # four chunks
    running = batcher.submit(Sampling(prompt="a", length=3000, seed=1))
    assert running.wait(10)
    long = batcher.submit(Sampling(prompt=prompt, length=50, seed=2, num_samples=2))
    same = batcher.submit(Sampling(prompt=prompt, length=50, seed=2))  # (joins in the same batches)
    assert long.result(10) == [solo(lm, prompt, 50, seed=2 + j) for j in range(2)] and same.result(10)[0] == \
        long.text()[0]
    assert running.result(10) == [solo(lm, "a", 3000, seed=1)]


def test_updates_carry_the_pieces_in_order_and_count_tokens(batcher):
    job = batcher.submit(Sampling(prompt="a", length=50, seed=1, num_samples=2))
    pieces, tokens = [[], []], 0
    while True:
        update = job.take()
        for acc, piece in zip(pieces, update.pieces):
            acc.append(piece)
        tokens += update.tokens
        if update.finished:
            break
        job.wait(10)
    assert ["".join(p) for p in pieces] == job.text() and tokens == job.tokens == 100
    assert update.error is None


def test_a_cancelled_job_leaves_and_frees_its_streams(batcher):
    job = batcher.submit(Sampling(prompt="a", length=100_000, seed=1, num_samples=4))
    assert job.wait(10)
    job.cancel()
    for _ in range(100):
        if batcher.streams == 0:
            break
        threading.Event().wait(0.02)
    assert batcher.streams == 0 and job.tokens < 400_000
    assert batcher.submit(Sampling(prompt="b", length=0)).result(10) == [""]


def test_limits_and_prompts_the_model_cannot_read(lm):
    b = Batcher(lm, max_streams=3)
    try:
        with pytest.raises(RequestError, match="prompt has characters the model never saw") as e:
            b.submit(Sampling(prompt="\u0416"))
        assert (e.value.status, e.value.field) == (422, "prompt")
        first = b.submit(Sampling(prompt="a", length=100_000, num_samples=2))
        with pytest.raises(RequestError, match="busy: 2 of its 3 streams") as e:
            b.submit(Sampling(prompt="a", num_samples=2))
        assert e.value.status == 503
        first.cancel()
    finally:
        b.close()


def test_drain_cuts_running_jobs_after_the_grace_and_refuses_new_ones(lm):
    b = Batcher(lm)
    try:
        short = b.submit(Sampling(prompt="a", length=20))
        endless = b.submit(Sampling(prompt="a", length=10**9))
        assert short.result(10)[0]
        b.drain(0.2)
        with pytest.raises(RequestError, match=SHUTTING_DOWN):
            b.submit(Sampling(prompt="a"))
        with pytest.raises(RequestError, match=SHUTTING_DOWN):
            endless.result(10)
        assert endless.tokens > 0 and b.streams == 0
    finally:
        b.close()


def test_close_ends_running_jobs(lm):
    b = Batcher(lm)
    job = b.submit(Sampling(prompt="a", length=10**9))
    assert job.wait(10)
    b.close()
    assert job.take().finished and job.error == SHUTTING_DOWN


def test_a_conditioned_model_batches_its_labels_together(tmp_path):
    rows = "label,text\n" + "up,aaaa aaa aaaaa\ndown,bbb bbbb bb bbb\n" * 40
    (tmp_path / "rows.csv").write_text(rows, encoding="utf-8")
    run = train_language_model([tmp_path / "rows.csv"], out=tmp_path / "run", condition_column="label", max_steps=2,
                               hidden=16, embed=8, batch_size=4, seq_len=16, warmup_steps=1, sample_length=0,
                               fit=False, eval_every=2, save_every=2)
    lm = load(run.path)
    b = Batcher(lm)
    try:
        jobs = {c: b.submit(Sampling(prompt="a", length=60, seed=4, condition=c)) for c in ("up", "down", None)}
        for c, job in jobs.items():
            assert job.result(10) == [lm.generate("a", 60, seed=4, condition=c)]
            assert job.records()[0]["condition"] == c
    finally:
        b.close()


# -- what a request may ask for ------------------------------------------------------------------
LIMITS = Limits(max_length=100, max_samples=4, max_prompt_chars=20, max_texts=3, max_text_chars=10)


@pytest.mark.parametrize("body, field, message", [
    ({"length": "5"}, "length", "length must be an integer, got a string"),
    ({"length": 101}, "length", "length must be at most 100 (the server's --max-length), got 101"),
    ({"length": -1}, "length", "length must be >= 0, got -1"),
    ({"length": True}, "length", "length must be an integer, got true"),
    ({"temperature": 0}, "temperature",
     'temperature must be from 0.001 to 1000, got 0.0; use "greedy": true for argmax decoding'),
    ({"temperature": 1e300}, "temperature", "temperature must be from 0.001 to 1000"),
    ({"temperature": None}, "temperature", "temperature must be a number, got null"),
    ({"top_p": 1.5}, "top_p", "top_p must be in (0, 1], got 1.5"),
    ({"top_k": 0}, "top_k", "top_k must be from 1 to the vocabulary size 11, got 0"),
    ({"top_k": 12}, "top_k", "top_k must be from 1 to the vocabulary size 11, got 12"),
    ({"num_samples": 5}, "num_samples", "num_samples must be at most 4 (the server's --max-samples), got 5"),
    ({"seed": -1}, "seed", "seed must be from 0 to 9007199254740991, got -1"),
    ({"prompt": "x" * 21}, "prompt", "prompt must be at most 20 characters (the server's --max-prompt-chars)"),
    ({"prompt": 5}, "prompt", "prompt must be a string, got an integer"),
    ({"prompt": "\ud800"}, "prompt", "prompt is not valid Unicode text"),
    ({"greedy": "yes"}, "greedy", "greedy must be true or false, got a string"),
    ({"stream": 1}, "stream", "stream must be true or false, got an integer"),
    ({"condition": "up"}, "condition", "this model was trained without labels; leave out condition"),
    ({"temprature": 1}, "temprature", "unknown field 'temprature'; the fields are: prompt, length"),
])
def test_bad_generation_fields_are_named(body, field, message):
    with pytest.raises(RequestError) as e:
        parse_generate(body, LIMITS, 11, None)
    assert (e.value.status, e.value.field) == (422, field) and message in str(e.value)


def test_generation_defaults_are_generates_within_the_limits():
    sampling, stream = parse_generate({"prompt": "hi", "seed": 3, "top_k": None, "condition": "up"}, LIMITS, 11,
                                      ["down", "up"])
    assert sampling == Sampling(prompt="hi", length=100, seed=3, condition="up") and stream is False
    assert parse_generate({"greedy": True, "temperature": 0}, Limits(), 11, None)[0].length == 500
    with pytest.raises(RequestError, match="condition 'sideways' is not a label of this model; its labels: down, up"):
        parse_generate({"condition": "sideways"}, LIMITS, 11, ["down", "up"])


@pytest.mark.parametrize("raw, message", [(b"{", "the body is not valid JSON"), (b"[1]", "must be a JSON object"),
                                          (b'{"temperature": NaN}', "NaN is not JSON"), (b"\xff", "not valid JSON"),
                                          (b"[" * 100_000, "not valid JSON"), (b"", "not valid JSON")])
def test_bodies_that_are_not_json_objects(raw, message):
    with pytest.raises(RequestError) as e:
        parse_json(raw)
    assert (e.value.status, e.value.field) == (400, None) and message in str(e.value)


@pytest.mark.parametrize("body, field, message", [
    ({}, "texts", 'give either "texts"'), ({"text": "a", "texts": ["b"]}, "texts", 'give either "texts"'),
    ({"texts": "a"}, "texts", "texts must be an array of strings, got a string"),
    ({"texts": []}, "texts", "texts must hold from 1 to 3 texts (the server's --max-texts), got 0"),
    ({"texts": ["a"] * 4}, "texts", "got 4"), ({"texts": ["a", 3]}, "texts[1]", "texts[1] must be a string"),
    ({"text": "x" * 11}, "text", "text must be at most 10 characters"), ({"texts": ["a"], "top": 1}, "top", "unknown"),
])
def test_bad_texts_are_named(body, field, message):
    with pytest.raises(RequestError) as e:
        parse_texts(body, LIMITS)
    assert (e.value.status, e.value.field) == (422, field) and message in str(e.value)
    assert parse_texts({"text": "a"}, LIMITS) == (["a"], True)


def test_limits_are_positive_integers():
    with pytest.raises(TextRNNError, match="--max-length must be a positive integer, got 0"):
        Limits(max_length=0)


def test_models_are_named_by_run_and_picked_by_task(lm_run, int_clf):
    models = load_models([lm_run, int_clf, lm_run], Limits())
    try:
        assert list(models.served) == ["run", "clf", "run-2"]
        assert models.pick("lm", None).name == "run" and models.pick("lm", "run-2").name == "run-2"
        assert models.pick("classify", None).name == "clf"
        with pytest.raises(RequestError, match="no model named 'nope'; the models: run, clf, run-2") as e:
            models.pick("lm", "nope")
        assert (e.value.status, e.value.field) == (404, "model")
        with pytest.raises(RequestError, match="model 'clf' is a classifier; /generate and /evaluate take a") as e:
            models.pick("lm", "clf")
        assert e.value.status == 422
        assert [m["task"] for m in models.describe()] == ["lm", "classify", "lm"]
        assert models.describe()[1]["labels"] == [0, 1]
    finally:
        models.close()
    lm_only = load_models([lm_run], Limits())
    with pytest.raises(RequestError, match="this server has no classifier loaded") as e:
        lm_only.pick("classify", None)
    assert e.value.status == 404
    lm_only.close()


def test_a_long_prompt_keeps_its_label_through_every_prefill_chunk(conditioned_run):
    lm = load(conditioned_run)
    prompt = ("aaaa aaa aaaaa\n" * 30)[:300]  # more than two chunks of PREFILL_CHUNK tokens
    assert len(prompt) > 2 * PREFILL_CHUNK
    b = Batcher(lm)
    try:
        for c in ("up", "down"):
            got = b.submit(Sampling(prompt=prompt, length=80, seed=4, condition=c)).result(30)
            assert got == [lm.generate(prompt, 80, seed=4, condition=c)]
    finally:
        b.close()


def test_stop_strings_and_banned_words_per_request(batcher, lm):
    free = lm.generate("First", 200, seed=8)
    options = dict(stop=[free[50:52]], ban=["e"])
    job = batcher.submit(Sampling(prompt="First", length=200, seed=8, **{k: tuple(v) for k, v in options.items()}))
    plain = batcher.submit(Sampling(prompt="First", length=200, seed=8))  # beside it, unaffected
    assert job.result(10) == [lm.generate("First", 200, seed=8, **options)]
    assert plain.result(10) == [free]
    body = {"prompt": "First", "length": 50, "stop": "x", "ban": ["ab", "c"]}
    sampling, _ = parse_generate(body, LIMITS, 11, None)
    assert sampling.stop == ("x",) and sampling.ban == ("ab", "c")
    for bad, message in [({"stop": [""]}, "stop must not be empty"), ({"ban": [3]}, "ban[0] must be a string"),
                         ({"prompt": "\U000f0001"}, "reserves for label markers")]:
        with pytest.raises(RequestError, match=message.replace("[", r"\[").replace("]", r"\]")):
            sampling, _ = parse_generate(bad, LIMITS, 11, None)
            batcher.submit(sampling)


# -- slots are released once, whatever moment a job ends (issue 23, defect 2) ---------------------
def _until(condition, seconds=10.0):
    """Wait (bounded) for ``condition()``; its last value."""
    deadline = threading.Event()
    for _ in range(int(seconds / 0.02)):
        if condition():
            return True
        deadline.wait(0.02)
    return condition()


def test_a_job_cancelled_while_its_prompt_runs_frees_its_slots(lm_run, tiny_corpus):
    """A job cancelled during a chunk of its prompt (more than one chunk long) used to be dropped
    without its slots: 16 samples of it and a 16-stream server answered "busy" for good."""
    lm = load(lm_run)
    b = Batcher(lm, max_streams=16)
    prompt = tiny_corpus.read_text()[: PREFILL_CHUNK * 2 + 10]
    jobs = []

    def cancel_during_the_chunk(module, args):  # the job is cancelled while its chunk runs
        for job in jobs:
            job.cancel()

    hook = lm.model.encoder.register_forward_pre_hook(cancel_during_the_chunk)
    try:
        for _ in range(3):
            jobs.append(b.submit(Sampling(prompt=prompt, length=50, seed=1, num_samples=16)))
            assert _until(lambda: b.streams == 0 and b.admitted == 0), (b.streams, b.admitted)
            jobs.clear()
        hook.remove()
        assert len(b.submit(Sampling(prompt="a", length=5, num_samples=16)).result(10)) == 16
    finally:
        hook.remove()
        b.close()


class _CancelledBetweenTwoLooks(Job):
    """A job whose cancel lands between two looks at it: the first look after ``cancel`` still sees it running."""

    late = False

    @property
    def ended(self):
        if self.late:
            self.late = False
            return False
        return super().ended

    def cancel(self):
        self.late = True
        super().cancel()


class _Stepper:
    """The batcher's stepper, with ``before(ids)`` called before each step (it may raise)."""

    def __init__(self, stepper, before):
        self.stepper, self.before = stepper, before

    def __call__(self, ids, *rest):
        self.before(ids)
        return self.stepper(ids, *rest)

    def __getattr__(self, name):
        return getattr(self.stepper, name)


def test_a_stream_is_released_once_when_its_cancel_lands_between_two_looks(lm):
    """_leave looked at each stream's end twice: a cancel between the looks (in a step where another
    stream ended) released its slot twice, and the server then admitted more than --max-streams."""
    b = Batcher(lm, max_streams=2)
    jobs = {}

    def cancel_in_the_last_step_of_short(ids):
        if "short" in jobs and jobs["short"].tokens == 4 and not jobs["long"].cancelled:
            jobs["long"].cancel()

    b._stepper = _Stepper(b._stepper, cancel_in_the_last_step_of_short)
    try:
        jobs["long"] = b.submit(Sampling(prompt="a", length=10**9, seed=1))
        jobs["long"].__class__ = _CancelledBetweenTwoLooks
        assert jobs["long"].wait(10)
        jobs["short"] = b.submit(Sampling(prompt="a", length=5, seed=2))
        assert _until(lambda: jobs["long"].ended and jobs["short"].ended and b.streams == 0)
        running = [b.submit(Sampling(prompt="a", length=10**9)) for _ in range(2)]
        with pytest.raises(RequestError, match="busy: 2 of its 2 streams"):
            b.submit(Sampling(prompt="a"))
        for r in running:
            r.cancel()
        assert _until(lambda: b.streams == 0 and b.admitted == 0)
    finally:
        b.close()


# -- a failing step ends only the jobs that cannot be run (issue 23, defect 8) ---------------------
def test_a_step_that_fails_for_a_large_batch_is_retried_in_smaller_groups(lm):
    """A step that fails for more than two rows (say the device runs out of memory) used to end
    every running stream; now its rows are stepped in smaller groups and every job goes on, its
    text the one generate gives."""
    b = Batcher(lm)

    def out_of_memory(ids):
        if ids.shape[0] > 2:
            raise RuntimeError("CUDA out of memory (simulated)")

    try:
        b._stepper = _Stepper(b._stepper, out_of_memory)
        asked = ((1, 1), (2, 2), (3, 1), (4, 1))  # (seed, samples)
        jobs = [b.submit(Sampling(prompt="First", length=60, seed=s, num_samples=n)) for s, n in asked]
        for (s, n), job in zip(asked, jobs):
            assert job.result(10) == [solo(lm, "First", 60, seed=s + j) for j in range(n)]
        assert _until(lambda: b.streams == 0 and b.admitted == 0)
    finally:
        b.close()


def test_a_row_that_fails_alone_ends_its_job_only_with_a_500(lm):
    b = Batcher(lm)
    try:
        bad = b.submit(Sampling(prompt="a", length=10**6, seed=9))

        def poisoned(ids):  # every step with one of the bad job's rows in it fails
            if any(s.job is bad for s in b._rows):
                raise RuntimeError("a step that cannot be run (simulated)")

        b._stepper = _Stepper(b._stepper, poisoned)
        good = [b.submit(Sampling(prompt="The ", length=80, seed=s, num_samples=2)) for s in (1, 2)]
        with pytest.raises(RequestError, match="generation failed") as e:
            bad.result(10)
        assert e.value.status == 500 and bad.error_status == 500
        for s, job in zip((1, 2), good):
            assert job.result(10) == [solo(lm, "The ", 80, seed=s + j) for j in range(2)]
        assert _until(lambda: b.streams == 0 and b.admitted == 0)
        assert b.submit(Sampling(prompt="a", length=20, seed=5)).result(10) == [solo(lm, "a", 20, seed=5)]
    finally:
        b.close()


def test_a_prompt_whose_run_fails_ends_its_job_only(lm_run):
    """A failure while the prompts run ends only the jobs whose prompt fails alone."""
    lm = load(lm_run)
    b = Batcher(lm)
    bad_id = int(lm.tokenizer.encode("j")[0])

    def poisoned(module, args):
        if (args[0] == bad_id).any():
            raise RuntimeError("a prompt that cannot be run (simulated)")

    hook = lm.model.encoder.register_forward_pre_hook(poisoned)
    try:
        jobs = [b.submit(Sampling(prompt=p, length=40, seed=3)) for p in ("The c", "jThe ", "The d")]
        with pytest.raises(RequestError, match="generation failed") as e:
            jobs[1].result(10)
        assert e.value.status == 500
        hook.remove()
        assert [jobs[0].result(10), jobs[2].result(10)] == [[solo(lm, p, 40, seed=3)] for p in ("The c", "The d")]
        assert _until(lambda: b.streams == 0 and b.admitted == 0)
    finally:
        hook.remove()
        b.close()
