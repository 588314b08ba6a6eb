import pytest
import torch

from conftest import TINY, run_cli as run
from textrnn.api import load
from textrnn.errors import TextRNNError
from textrnn.inference.options import SamplingOptions
from textrnn.inference.sampling import filter_logits
from textrnn.training.lm import train_language_model


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from conftest import FIXTURES

    out = tmp_path_factory.mktemp("gen") / "run"
    train_language_model([FIXTURES / "tiny.txt"], out=out, max_steps=30, **TINY)
    return load(out)


def test_seeded_generation_is_reproducible(lm):
    a = lm.generate("First", 80, temperature=0.8, seed=3)
    b = lm.generate("First", 80, temperature=0.8, seed=3)
    c = lm.generate("First", 80, temperature=0.8, seed=4)
    assert a == b and a != c
    assert len(a) == 80


def test_batched_samples_differ_and_have_length(lm):
    texts = lm.generate("", 50, num_samples=4, seed=1)
    assert len(texts) == 4 and all(len(t) == 50 for t in texts)
    assert len(set(texts)) > 1


def test_greedy_is_deterministic_without_seed(lm):
    assert lm.generate("The", 40, greedy=True) == lm.generate("The", 40, greedy=True)


def test_prompt_state_is_used(lm):
    # a prompt changes what follows (the state after the prompt is not the empty state)
    assert lm.generate("First Citizen:\n", 30, greedy=True) != lm.generate("\n", 30, greedy=True)


def test_top_k_and_top_p_filters():
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.1, 0.06, 0.04]]))
    k = filter_logits(logits, top_k=2)
    assert torch.isfinite(k).tolist() == [[True, True, False, False, False]]
    p = filter_logits(logits, top_p=0.75)
    assert torch.isfinite(p).tolist() == [[True, True, False, False, False]]
    p = filter_logits(logits, top_p=0.85)
    assert torch.isfinite(p).tolist() == [[True, True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1


def test_sampling_never_leaves_the_allowed_set(lm):
    from textrnn.inference.generate import sample_ids
    from textrnn.inference.options import SamplingOptions

    torch.manual_seed(0)
    model = lm.model
    prompt = lm.tokenizer.encode("First").tolist()
    # the allowed set at each step depends on the state; check it step by step with top_k=1 == greedy
    ids_k1 = torch.stack(list(sample_ids(model, prompt, SamplingOptions(length=40, top_k=1, seed=5))))
    ids_greedy = torch.stack(list(sample_ids(model, prompt, SamplingOptions(length=40, greedy=True))))
    assert torch.equal(ids_k1, ids_greedy)
    ids_p = torch.stack(list(sample_ids(model, prompt, SamplingOptions(length=40, top_p=1e-6, seed=9))))
    assert torch.equal(ids_p, ids_greedy)
    # with top_k=3, every sampled token is among the 3 most likely under the model
    options = SamplingOptions(length=60, top_k=3, temperature=2.0, seed=2)
    tokens = torch.stack(list(sample_ids(model, prompt, options))).squeeze(1)
    full = torch.tensor([prompt[:-1] + [prompt[-1]] + tokens.tolist()[:-1]])
    with torch.no_grad():
        logits, _ = model(full)
    top3 = logits[0, len(prompt) - 1:].topk(3, dim=-1).indices  # (60, 3)
    assert (top3 == tokens[:, None]).any(dim=1).all()


def test_unk_is_never_sampled(lm):
    from textrnn.inference.generate import sample_ids
    from textrnn.inference.options import SamplingOptions

    ids = torch.stack(list(sample_ids(lm.model, [1], SamplingOptions(length=300, temperature=5.0, seed=0),
                                      banned=[lm.tokenizer.unk_id])))
    assert not (ids == lm.tokenizer.unk_id).any()


@pytest.mark.parametrize("opts,match", [
    (dict(temperature=0), "--temp"), (dict(temperature=-1), "--temp"), (dict(top_p=0), "--top-p"),
    (dict(top_p=1.5), "--top-p"), (dict(top_k=10_000), "--top-k"), (dict(num_samples=0), "--num-samples"),
])
def test_bad_options(lm, opts, match):
    with pytest.raises(TextRNNError, match=match):
        lm.generate("First", 10, **opts)


def test_prompt_with_unseen_characters(lm):
    with pytest.raises(TextRNNError, match="never saw"):
        lm.generate("Ж", 10)


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    prompt=st.text(alphabet="First Citizen:\nabc", max_size=12),
    length=st.integers(0, 30),
    temperature=st.floats(0.05, 5.0),
    top_k=st.one_of(st.none(), st.integers(1, 20)),
    top_p=st.one_of(st.none(), st.floats(0.01, 1.0)),
    greedy=st.booleans(),
    num_samples=st.integers(1, 3),
    seed=st.one_of(st.none(), st.integers(0, 2**31)),
)
def test_property_any_valid_options_generate(lm, prompt, length, temperature, top_k, top_p, greedy, num_samples,
                                             seed):
    out = lm.generate(prompt, length, temperature=temperature, top_k=top_k, top_p=top_p, greedy=greedy,
                      num_samples=num_samples, seed=seed)
    texts = [out] if num_samples == 1 else out
    assert len(texts) == num_samples
    assert all(len(t) == length for t in texts)  # a char model: one character per step
    assert all("\ufffd" not in t for t in texts)  # <unk> is never sampled


def test_unseeded_generation_leaves_the_global_rng_alone(lm_run):
    lm = load(lm_run)
    torch.manual_seed(0)
    a = lm.generate("First", 20)
    after = torch.rand(1)
    torch.manual_seed(0)
    assert torch.equal(after, torch.rand(1))
    assert lm.generate("First", 20) != a or lm.generate("First", 20) != a  # still random without a seed


def test_top_k_zero_message():
    with pytest.raises(TextRNNError, match=r"^--top-k must be >= 1, got 0$"):
        SamplingOptions(top_k=0).check()
    with pytest.raises(TextRNNError, match="from 1 to the vocabulary size 50, got 51"):
        SamplingOptions(top_k=51).check(50)
    res = run(["generate", "--top-k", "0"])
    assert res.exit_code == 2 and "--top-k must be >= 1" in res.stderr and "1000000000" not in res.stderr


def test_the_prompt_runs_through_the_encoder_only(lm):
    calls = []
    hook = lm.model.head.register_forward_hook(lambda module, args, out: calls.append(args[0].shape))
    try:
        text = lm.generate("First Citizen:\nBefore we proceed", length=5, seed=1)
    finally:
        hook.remove()
    assert len(text) == 5 and calls == []  # the sampler's own head does the 5 steps; the prompt needs no logits


def test_many_samples_each_with_its_own_seed(lm):
    from textrnn.inference.generate import generate_many

    options = SamplingOptions(length=12, num_samples=5, seed=40, temperature=0.9)
    records = list(generate_many(lm.model, lm.tokenizer, "Th", options, batch_size=2))
    assert [r["sample"] for r in records] == [1, 2, 3, 4, 5] and [r["seed"] for r in records] == [40, 41, 42, 43, 44]
    assert all(r["prompt"] == "Th" and r["length"] == 12 and r["temperature"] == 0.9 and r["top_p"] is None
               for r in records)
    for r in records:  # a sample's seed gives its text again, alone
        assert lm.generate("Th", 12, seed=r["seed"], temperature=0.9) == r["text"]
    again = list(generate_many(lm.model, lm.tokenizer, "Th", options, batch_size=5))
    assert [r["text"] for r in again] == [r["text"] for r in records]  # batching does not change the texts
    fresh = list(lm.generate_many("", 5, num_samples=2))
    assert fresh[1]["seed"] == fresh[0]["seed"] + 1  # no seed: a random one, recorded


def test_a_stop_string_ends_the_text_where_it_first_appears(lm):
    free = lm.generate("First", 300, seed=7, temperature=0.9)
    stop = free[40:42]  # a string the free text holds
    cut = free.index(stop)
    assert lm.generate("First", 300, seed=7, temperature=0.9, stop=[stop]) == free[:cut]  # not written itself
    two = lm.generate("First", 300, seed=7, temperature=0.9, num_samples=2, stop=[stop])
    assert two[0] == free[:cut] and stop not in two[1]  # each sample stops on its own
    assert lm.generate("First", 300, seed=7, temperature=0.9, stop=["\u2603"]) == free  # never met: all of it


def test_a_banned_word_is_never_completed(lm):
    from collections import Counter

    free = lm.generate("First", 400, seed=3)
    word = Counter(free[i : i + 2] for i in range(len(free) - 1)).most_common(1)[0][0]
    banned = lm.generate("First", 400, seed=3, ban=[word])
    assert word in free and word not in "First"[-1:] + banned and banned != free and len(banned) == 400
    assert word[0] in banned  # its first character alone is still written (a character model bans the sequence)
    single = lm.generate("First", 400, seed=3, ban=[word[0]])
    assert word[0] not in single


def test_stop_and_ban_from_the_command_line(lm_run):
    lm = load(lm_run)
    free = lm.generate("First", 200, seed=2)
    res = run(["generate", "-c", str(lm_run), "-p", "First", "-n", "200", "--seed", "2", "--stop", free[30:32],
               "--ban", "\\n", "--ban", "ee"])
    assert res.exit_code == 0, res.output
    expected = lm.generate("First", 200, seed=2, stop=[free[30:32]], ban=["\n", "ee"])
    assert res.stdout == "First" + expected + "\n" and "\n" not in expected and "ee" not in expected
    res = run(["generate", "-c", str(lm_run), "--stop", ""])
    assert res.exit_code == 2 and "--stop must not be empty" in res.stderr
