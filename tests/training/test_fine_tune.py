"""Fine-tuning a language model (--init-from): the tokenizer grows, the weights carry over, the options."""

import json

import pytest
import torch

from conftest import TINY, run_cli
from textrnn import checkpoint
from textrnn.errors import TextRNNError
from textrnn.model import LanguageModel, copy_pretrained
from textrnn.tokenizer import Tokenizer, train_tokenizer
from textrnn.training.lm import train_language_model

STEPS = {k: v for k, v in TINY.items() if k not in ("eval_every", "save_every")}


def test_a_char_tokenizer_gains_the_new_characters_after_its_own_ids():
    old = train_tokenizer("char", ["abc\n"])
    grown = old.with_tokens_of(train_tokenizer("char", ["cdé✓"]))
    assert grown.vocab_size == old.vocab_size + 3
    assert list(grown.encode("abc\n")) == list(old.encode("abc\n"))  # the old ids stay
    assert grown.decode(grown.encode("dé✓ab")) == "dé✓ab" and grown.unk_id == old.unk_id
    assert Tokenizer.from_json(grown.to_json()).vocab_size == grown.vocab_size
    assert old.with_tokens_of(train_tokenizer("char", ["cab"])) is old
    word = train_tokenizer("word", ["a b c"])
    assert word.with_tokens_of(train_tokenizer("word", ["d e"])) is word  # word and BPE stay as they are


def test_copied_weights_give_the_same_scores_and_new_rows_start_at_the_mean():
    from textrnn.config import ModelConfig

    torch.manual_seed(0)
    source = LanguageModel(ModelConfig(vocab_size=10, layers=2, hidden=16, embed=8)).eval()
    model = LanguageModel(ModelConfig(vocab_size=13, layers=2, hidden=16, embed=8)).eval()
    assert copy_pretrained(model, source) == 3
    ids = torch.randint(0, 10, (2, 7))
    with torch.no_grad():
        assert torch.allclose(model(ids)[0][..., :10], source(ids)[0], atol=1e-6)
        emb = model.encoder.embedding.weight
        assert torch.allclose(emb[10:], source.encoder.embedding.weight.mean(0).expand(3, -1))
        assert torch.allclose(model.head.bias[12], source.head.bias.mean())
    with pytest.raises(ValueError, match="cannot grow"):
        copy_pretrained(LanguageModel(ModelConfig(vocab_size=13, layers=1, hidden=16, embed=8)),
                        LanguageModel(ModelConfig(vocab_size=10, layers=1, hidden=8, embed=8)))


def test_fine_tuning_starts_from_the_model_and_records_it(lm_run, tmp_path):
    corpus = tmp_path / "new.txt"
    corpus.write_text("Zürich — ein schöner Tag. " * 60 + "\n", encoding="utf-8")
    notes = []
    run = train_language_model([corpus], out=tmp_path / "ft", init_from=lm_run, max_steps=3, eval_every=3,
                               on_note=notes.append, batch_size=4, seq_len=16)
    source = checkpoint.load(lm_run)
    tuned = checkpoint.load(run.path)
    config = json.loads((run.path / "config.json").read_text())
    new_chars = sorted(set(corpus.read_text(encoding="utf-8")) - set(source.tokenizer.hf.get_vocab()))
    assert config["init_from"]["added_tokens"] == len(new_chars) > 0
    assert tuned.tokenizer.vocab_size == source.tokenizer.vocab_size + len(new_chars)
    assert tuned.tokenizer.unknown_chars(corpus.read_text(encoding="utf-8")) == []  # not <unk>
    assert {k: config["model"][k] for k in ("layers", "hidden", "embed")} == \
        {k: getattr(source.run.model, k) for k in ("layers", "hidden", "embed")}
    assert config["train"]["lr"] == 2e-3 and config["train"]["warmup_steps"] == 20  # the fine-tuning defaults
    assert len(notes) == 1 and notes[0].startswith(f"fine-tuning {lm_run}") and "new tokens" in notes[0]
    # training moved it, from the source's weights (the recurrent weights are close to the source's)
    a, b = source.model.encoder.rnn.weight_hh_l0, tuned.model.encoder.rnn.weight_hh_l0
    assert 0 < (a - b).abs().max() < 0.05
    resumed = train_language_model([corpus], out=tmp_path / "ft", init_from=lm_run, max_steps=5, resume=True)
    assert resumed.steps == 5
    ulmfit = train_language_model([corpus], out=tmp_path / "ulmfit", init_from=lm_run, max_steps=2, eval_every=2,
                                  layer_lr_decay=2.6, batch_size=4, seq_len=16)  # discriminative rates, resumable
    assert train_language_model([corpus], out=ulmfit.path, max_steps=4, resume=True).steps == 4
    assert json.loads((run.path / "config.json").read_text())["init_from"] == config["init_from"]


def test_gradual_unfreezing_fine_tunes_the_output_layer_first(lm_run, tiny_corpus, tmp_path):
    run = train_language_model([tiny_corpus], out=tmp_path / "ft", init_from=lm_run, max_steps=3, eval_every=3,
                               unfreeze_every=0.9, batch_size=4, seq_len=16)
    source, tuned = checkpoint.load(lm_run).model, checkpoint.load(run.path).model
    assert torch.equal(source.encoder.rnn.weight_hh_l0, tuned.encoder.rnn.weight_hh_l0)  # not its turn yet
    assert torch.equal(source.encoder.embedding.weight, tuned.encoder.embedding.weight)
    assert not torch.equal(source.head.weight, tuned.head.weight)
    resumed = train_language_model([tiny_corpus], out=run.path, max_steps=12, resume=True)
    thawed = checkpoint.load(resumed.path).model
    assert not torch.equal(source.encoder.rnn.weight_hh_l0, thawed.encoder.rnn.weight_hh_l0)
    with pytest.raises(TextRNNError, match="--unfreeze-every .* needs --init-from"):
        train_language_model([tiny_corpus], out=tmp_path / "scratch", unfreeze_every=0.5, max_steps=1)


def test_options_that_would_change_the_model_are_refused(lm_run, tiny_corpus, tmp_path):
    with pytest.raises(TextRNNError, match="--init-from .*drop --hidden"):
        train_language_model([tiny_corpus], out=tmp_path / "a", init_from=lm_run, hidden=64, max_steps=1)
    with pytest.raises(TextRNNError, match="drop --tokenizer"):
        train_language_model([tiny_corpus], out=tmp_path / "b", init_from=lm_run, tokenizer="bpe", max_steps=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    run = train_language_model([tiny_corpus], out=tmp_path / "c", init_from=lm_run, max_steps=1,
                               output_dropout=0.3, lr=1e-3, **{k: v for k, v in STEPS.items() if k != "hidden"
                                                               and k != "embed"})
    config = json.loads((run.path / "config.json").read_text())
    assert config["model"]["output_dropout"] == 0.3 and config["train"]["lr"] == 1e-3  # regularization and lr: yours


def test_init_from_a_classifier_or_nothing_is_one_error(tmp_path, tiny_corpus, monkeypatch):
    from textrnn.checkpoint import SHIPPED

    monkeypatch.chdir(tmp_path)
    res = run_cli(["train", str(tiny_corpus), "--init-from", str(SHIPPED["sst2"]), "--max-steps", "1"])
    assert res.exit_code == 2 and "is a classifier" in res.output and len(res.output.strip().splitlines()) == 1
    res = run_cli(["train", str(tiny_corpus), "--init-from", "no-such-run", "--max-steps", "1"])
    assert res.exit_code == 2 and "no-such-run: no such checkpoint" in res.output


def test_the_shipped_model_fine_tunes_by_name(tmp_path):
    corpus = tmp_path / "mine.txt"
    corpus.write_text("The quick brown fox jumps over the lazy dog. ☃\n" * 40, encoding="utf-8")
    run = train_language_model([corpus], out=tmp_path / "ft", init_from="english-char", max_steps=1,
                               batch_size=2, seq_len=16, sample_length=0)
    config = json.loads((run.path / "config.json").read_text())
    assert config["init_from"]["run"] == "english-char" and config["init_from"]["added_tokens"] == 1
    assert config["model"]["layers"] == 2 and config["model"]["hidden"] == 512
