import pytest
import torch

from conftest import needs_cpu_bf16, run_in_chunks, tiny_lm as tiny
from textrnn.config import ModelConfig
from textrnn.model import Classifier, LanguageModel


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
def test_shapes(cell):
    model = tiny(cell)
    logits, state = model(torch.randint(0, 11, (3, 5)))
    assert logits.shape == (3, 5, 11)
    h = state[0] if cell == "lstm" else state
    assert h.shape == (2, 3, 8)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn", "mingru", "minlstm"])
def test_carried_state_equals_one_long_pass(cell):
    model = tiny(cell)
    ids = torch.randint(0, 11, (2, 12))
    full, _ = model(ids)
    chunked, _ = run_in_chunks(model, ids)
    torch.testing.assert_close(chunked, full)


def test_tied_weights_share_storage():
    model = tiny(embed=8, tie_weights=True)
    assert model.head.weight.data_ptr() == model.encoder.embedding.weight.data_ptr()


def test_overfits_a_tiny_batch():
    torch.manual_seed(0)
    model = LanguageModel(ModelConfig(vocab_size=5, hidden=32, embed=8, dropout=0.0))
    ids = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0]])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(60):
        logits, _ = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_embed_dropout_drops_whole_tokens_only_in_training():
    torch.manual_seed(0)
    enc = LanguageModel(ModelConfig(vocab_size=50, hidden=8, embed=4, dropout=0.0, embed_dropout=0.5)).encoder
    ids = torch.arange(50).repeat(2, 1)  # every token twice
    x = enc.embed(ids)  # (2, 50, 4)
    zero = (x == 0).all(dim=-1)  # (2, 50)
    assert torch.equal(zero[0], zero[1])  # a dropped type is dropped at every occurrence
    assert 5 < zero[0].sum() < 45
    kept = ~zero[0]
    torch.testing.assert_close(x[0, kept], enc.embedding.weight[kept] * 2)  # rescaled by 1 / (1 - p)
    enc.eval()
    torch.testing.assert_close(enc.embed(ids)[0], enc.embedding.weight)


def test_packed_padded_equals_one_by_one():
    torch.manual_seed(0)
    for cell in ("lstm", "gru", "rnn", "mingru", "minlstm"):
        model = Classifier(ModelConfig(vocab_size=20, cell=cell, hidden=8, embed=6, layers=2, bidirectional=True,
                                       num_classes=3, dropout=0.0)).eval()
        lengths = torch.tensor([7, 3, 5, 1])
        ids = torch.randint(1, 20, (4, 7))
        for i, n in enumerate(lengths):
            ids[i, n:] = 0
        batched = model(ids, lengths)
        single = torch.cat([model(ids[i:i + 1, :n], lengths[i:i + 1]) for i, n in enumerate(lengths)])
        torch.testing.assert_close(batched, single, rtol=1e-5, atol=1e-6)
        # the padding value does not matter
        ids2 = ids.clone()
        for i, n in enumerate(lengths):
            ids2[i, n:] = 13
        torch.testing.assert_close(model(ids2, lengths), batched)


def test_tied_weights_with_a_projection_when_embed_differs_from_hidden():
    model = tiny(embed=6, tie_weights=True)  # hidden 8
    assert model.head.weight.data_ptr() == model.encoder.embedding.weight.data_ptr()
    assert model.proj.weight.shape == (6, 8)
    assert model(torch.randint(0, 11, (2, 3)))[0].shape == (2, 3, 11)
    assert tiny(embed=8, tie_weights=True).proj is None and tiny(embed=6).proj is None
    assert "proj.weight" not in tiny(embed=8, tie_weights=True).state_dict()


def test_return_outputs_gives_the_last_layers_raw_and_dropped_outputs():
    model = tiny(output_dropout=0.5).train()
    torch.manual_seed(0)
    logits, state, out = model(torch.randint(0, 11, (2, 5)), return_outputs=True)
    assert out.raw.shape == out.dropped.shape == (2, 5, 8)
    kept = out.dropped != 0
    torch.testing.assert_close(out.dropped[kept], out.raw[kept] * 2)
    torch.testing.assert_close(logits, model.head(out.dropped))


def test_a_checkpoint_saved_before_the_regularization_options_loads_to_the_same_outputs():
    """tests/fixtures/lm_before_regularization.safetensors: written by the code before the AWD-LSTM options
    (2x8 tied LSTM, vocabulary 11); the logits below are what that code computed."""
    from pathlib import Path

    from textrnn import checkpoint

    model = LanguageModel(ModelConfig(vocab_size=11, layers=2, hidden=8, embed=8, tie_weights=True)).eval()
    checkpoint.load_weights(model, Path(__file__).parent / "fixtures" / "lm_before_regularization.safetensors")
    expected = [0.762428879737854, -0.7591307163238525, 0.325038343667984, -1.0189896821975708,
                -0.21285472810268402, 0.6294690370559692, -0.14980515837669373, -0.8926253914833069,
                -0.4214077293872833, -0.11936900019645691, -0.10288102179765701]
    with torch.no_grad():
        torch.testing.assert_close(model(torch.tensor([[1, 2, 3, 4]]))[0][0, -1], torch.tensor(expected))


def test_the_shipped_sst2_classifier_gives_the_same_outputs():
    from pathlib import Path

    from textrnn import checkpoint

    ck = checkpoint.load(Path(__file__).resolve().parents[1] / "checkpoints" / "sst2")
    ids = torch.tensor([[5, 17, 300, 2, 41, 9], [7, 8, 1000, 12, 0, 0]])
    # The int8 export (2026-11-27) of the weights for which the code before the AWD-LSTM options gave
    # [[0.40381, -0.52351], [-0.68581, 0.61700]]; the forward pass that gives these gave those.
    expected = [[0.4043044447898865, -0.5236576795578003], [-0.6848419904708862, 0.6157709360122681]]
    with torch.no_grad():
        torch.testing.assert_close(ck.model(ids, torch.tensor([6, 4])), torch.tensor(expected))


# -- the adaptive softmax ------------------------------------------------------------------
def _adaptive(**kw):
    return tiny("lstm", 2, hidden=32, adaptive_softmax=True, adaptive_cutoffs="3,7", **kw)


def test_adaptive_token_nll_is_minus_the_target_log_prob_of_asm_log_prob():
    model = _adaptive()
    ids, targets = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    targets[2, 5:] = -100  # padding scores 0
    with torch.no_grad():
        nll, _ = model.token_nll(ids, targets)  # (3, 7)
        raw, _ = model.encoder(ids)
        logp = model.asm.log_prob(raw.flatten(0, 1)).view(3, 7, 11)
        logits, _ = model(ids)  # log-probabilities under the adaptive softmax
    expected = -logp.gather(2, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1).masked_fill(targets < 0, 0.0)
    torch.testing.assert_close(nll, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(logits, logp)
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(3, 7))
    assert model.head is None and [n for n, _ in model.named_parameters() if n.startswith("asm.")][:2] == [
        "asm.head.weight", "asm.head.bias"]


def test_full_softmax_token_nll_is_the_cross_entropy_of_the_logits():
    model = tiny("gru", 2)
    ids, targets = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    with torch.no_grad():
        nll, _ = model.token_nll(ids, targets)
        logits, _ = model(ids)
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    torch.testing.assert_close(nll, expected.view(3, 7))
    torch.testing.assert_close(model.log_probs(model.encoder(ids)[0]), torch.log_softmax(logits, -1))


def test_adaptive_cutoffs_default_rule_and_bad_values_are_one_line_errors():
    from textrnn.config import ModelConfig, auto_cutoffs
    from textrnn.errors import TextRNNError

    assert auto_cutoffs(20000) == [2000, 10000] and auto_cutoffs(4096) == [409, 2048] and auto_cutoffs(5) == [2]
    assert ModelConfig(vocab_size=11, adaptive_softmax=True).cutoffs() == [1, 5]
    assert ModelConfig(vocab_size=11, adaptive_softmax=True, adaptive_cutoffs=" 3, 8").cutoffs() == [3, 8]
    bad = [dict(adaptive_cutoffs="3,11", vocab_size=11), dict(adaptive_cutoffs="8,3"), dict(adaptive_cutoffs="a"),
           dict(adaptive_cutoffs="0,5"), dict(tie_weights=True), dict(num_classes=2)]
    for kw in bad:
        with pytest.raises(TextRNNError) as e:
            ModelConfig(**{"vocab_size": 11, "adaptive_softmax": True, **kw})
        assert "\n" not in str(e.value) and "adaptive" in str(e.value)


@needs_cpu_bf16
def test_adaptive_softmax_trains_under_bf16_autocast():
    model = _adaptive().train()
    ids, targets = torch.randint(0, 11, (3, 7)), torch.randint(0, 11, (3, 7))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll, _ = model.token_nll(ids, targets)  # the clusters run in float32 (asm mixes dtypes otherwise)
        logp = model.log_probs(torch.randn(2, 32))
    nll.mean().backward()
    assert nll.dtype == logp.dtype == torch.float32 and model.asm.head.weight.grad is not None
