"""dlbook.bert: the encoder and MLM head against transformers, the masking rule, the data."""

import math

import pytest
import torch

from dlbook.bert import (
    CLS,
    IGNORE,
    KINDS,
    MASK,
    N_SPECIAL,
    PAD,
    BertClassifier,
    BertConfig,
    BertEncoder,
    BertForMLM,
    context_free_mlm_loss,
    encode,
    from_hf_state_dict,
    mask_tokens,
    mlm_loss,
    pydoc_paragraphs,
    pydoc_topics,
    pydoc_vocab,
    topic_kind,
)

transformers = pytest.importorskip("transformers")

CONFIG = BertConfig(vocab_size=40, max_len=16, d_model=32, n_heads=4, n_layers=2, d_ff=64)


def _hf_config():
    return transformers.BertConfig(
        vocab_size=40, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=64, max_position_embeddings=16, type_vocab_size=2,
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, hidden_act="gelu",
        layer_norm_eps=1e-12, pad_token_id=PAD)


def _batch():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(N_SPECIAL, 40, (3, 16), generator=gen)
    ids[:, 0] = CLS
    ids[1, 10:] = PAD  # a padded sequence
    segments = torch.zeros_like(ids)
    segments[:, 8:] = 1
    return ids, segments


def test_encoder_matches_transformers_bert_model():
    torch.manual_seed(0)
    theirs = transformers.BertModel(_hf_config()).eval()
    ours = BertEncoder(CONFIG).eval()
    from_hf_state_dict(ours, theirs.state_dict())
    ids, segments = _batch()
    out = theirs(input_ids=ids, token_type_ids=segments, attention_mask=(ids != PAD).long())
    hidden, pooled = ours(ids, segments)
    torch.testing.assert_close(hidden, out.last_hidden_state, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(pooled, out.pooler_output, atol=1e-5, rtol=1e-5)


def test_mlm_matches_transformers_bert_for_masked_lm():
    torch.manual_seed(1)
    theirs = transformers.BertForMaskedLM(_hf_config()).eval()
    ours = BertForMLM(CONFIG).eval()
    from_hf_state_dict(ours, theirs.state_dict())
    ids, segments = _batch()
    logits = theirs(input_ids=ids, token_type_ids=segments,
                    attention_mask=(ids != PAD).long()).logits
    torch.testing.assert_close(ours(ids, segments), logits, atol=1e-5, rtol=1e-5)
    inputs, labels = mask_tokens(ids, 40, generator=torch.Generator().manual_seed(2))
    loss = theirs(input_ids=inputs, token_type_ids=segments,
                  attention_mask=(ids != PAD).long(), labels=labels).loss
    torch.testing.assert_close(mlm_loss(ours(inputs, segments), labels), loss,
                               atol=1e-5, rtol=1e-5)


def test_mlm_head_is_tied_to_the_token_embedding():
    model = BertForMLM(CONFIG)
    assert model.head.token_embedding.weight is model.encoder.embed.token.weight


def test_masking_rule_15_percent_then_80_10_10():
    n_vocab = 50
    ids = torch.randint(N_SPECIAL, n_vocab, (400, 500), generator=torch.Generator().manual_seed(0))
    ids[:, 0] = CLS
    ids[:, -50:] = PAD
    inputs, labels = mask_tokens(ids, n_vocab, generator=torch.Generator().manual_seed(1))
    real = ids >= N_SPECIAL
    chosen = labels != IGNORE
    assert not chosen[~real].any()  # CLS and PAD are never chosen
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])
    n, k = int(real.sum()), int(chosen.sum())

    def within(count, total, p):  # 5 standard deviations of a binomial count
        return abs(count - total * p) < 5 * math.sqrt(total * p * (1 - p))

    assert within(k, n, 0.15)
    masked = int((inputs[chosen] == MASK).sum())
    same = int((inputs[chosen] == ids[chosen]).sum())
    swapped = k - masked - same
    assert within(masked, k, 0.8)
    # a random replacement equals the original with probability 1 / (n_vocab - N_SPECIAL)
    p_same = 0.1 + 0.1 / (n_vocab - N_SPECIAL)
    assert within(same, k, p_same)
    assert within(swapped, k, 0.1 - 0.1 / (n_vocab - N_SPECIAL))
    assert int((inputs[chosen] < N_SPECIAL).sum()) == masked  # swaps never insert specials


def test_mlm_loss_averages_only_chosen_positions():
    logits = torch.randn(2, 5, 7)
    labels = torch.full((2, 5), IGNORE)
    labels[0, 1], labels[1, 3] = 4, 2
    expected = -(logits[0, 1].log_softmax(-1)[4] + logits[1, 3].log_softmax(-1)[2]) / 2
    torch.testing.assert_close(mlm_loss(logits, labels), expected)


def test_context_free_loss_matches_a_monte_carlo_of_the_masking_rule():
    """The Bayes loss given only the shown token is the conditional entropy H(original |
    shown), here estimated from counts of mask_tokens' own corruptions of a toy text."""
    prior = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    k, n = len(prior), 400_000
    gen = torch.Generator().manual_seed(0)
    original = N_SPECIAL + torch.multinomial(prior, n, replacement=True, generator=gen)
    shown, labels = mask_tokens(original[None, :], N_SPECIAL + k, p=1.0, generator=gen)
    assert (labels == original).all()
    joint = torch.zeros(N_SPECIAL + k, N_SPECIAL + k, dtype=torch.float64)
    joint.index_put_((shown[0], labels[0]), torch.ones(n, dtype=torch.float64),
                     accumulate=True)
    joint /= n
    cond = joint / joint.sum(1, keepdim=True).clamp_min(1e-300)
    monte_carlo = -(joint[joint > 0] * cond[joint > 0].log()).sum().item()
    exact = context_free_mlm_loss(prior)
    assert abs(exact - monte_carlo) < 0.01, (exact, monte_carlo)
    entropy = -(prior[prior > 0] * prior[prior > 0].log()).sum().item()
    assert exact < entropy  # the shown token helps
    # scored on another distribution: the prior's guesses, the originals drawn from target
    target = torch.tensor([0.25, 0.25, 0.25, 0.25, 0.0])
    assert context_free_mlm_loss(prior, target) > context_free_mlm_loss(target)
    with pytest.raises(ValueError, match="zero wherever prior"):
        context_free_mlm_loss(prior, torch.full((5,), 0.2))
    with pytest.raises(ValueError, match="summing to 1"):
        context_free_mlm_loss(prior * 2)


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = BertForMLM(CONFIG)
    ids, _ = _batch()
    inputs, labels = mask_tokens(ids, 40, p=0.5, generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        loss = mlm_loss(model(inputs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05


def test_probe_freezes_the_encoder():
    probe = BertClassifier(BertEncoder(CONFIG), 3, freeze_encoder=True)
    trainable = [n for n, p in probe.named_parameters() if p.requires_grad]
    assert trainable == ["head.weight", "head.bias"]
    ids, _ = _batch()
    assert probe(ids).shape == (3, 3)


def test_corpus_structure_and_labels():
    topics = pydoc_topics()
    assert len(topics) == 79
    assert topic_kind('The "assert" statement') == 0
    assert topic_kind("Binary arithmetic operations") == 1
    assert topic_kind("Special method names") == 2
    assert topic_kind('"pdb" — The Python Debugger') is None
    texts, kinds = pydoc_paragraphs()
    assert len(texts) == len(kinds) > 500
    assert set(kinds) == set(range(len(KINDS)))
    assert all(len(t) >= 80 and not t.startswith(" ") for t in texts)
    vocab = pydoc_vocab()
    x = encode(vocab, texts[:4], 32)
    assert x.shape == (4, 32) and bool((x[:, 0] == CLS).all())
    assert vocab.decode((x[0, 1:] - N_SPECIAL).tolist()) == texts[0][:31]


@pytest.mark.parametrize("bad, error", [
    (dict(vocab_size=0), ValueError), (dict(vocab_size=10, d_model=30, n_heads=4), ValueError),
    (dict(vocab_size=10, dropout=1.0), ValueError), (dict(vocab_size=2.5), TypeError)])
def test_bad_configs(bad, error):
    with pytest.raises(error):
        BertConfig(**bad)


def test_bad_inputs():
    model = BertEncoder(CONFIG)
    with pytest.raises(ValueError, match="ids"):
        model(torch.full((1, 4), 99))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.full((1, 17), CLS))
    with pytest.raises(ValueError, match="p must be"):
        mask_tokens(torch.full((1, 4), 5), 40, p=1.5)
    with pytest.raises(ValueError, match="logits"):
        mlm_loss(torch.zeros(2, 3), torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="encoder"):
        BertClassifier(torch.nn.Linear(2, 2), 3)
    with pytest.raises(ValueError, match="state_dict has no"):
        from_hf_state_dict(model, {})
    with pytest.raises(ValueError, match="pool"):
        BertClassifier(model, 3, pool="max")
    with pytest.raises(ValueError, match="n_classes"):
        BertClassifier(model, 1)


def test_shipped_checkpoint_revalidates():
    from dlbook.bert import load_bert, mlm_validation_loss, pydoc_tokens

    model, record = load_bert()  # also checks size and SHA-256 against the manifest
    tokens = pydoc_tokens()
    held_out = tokens[round(0.9 * len(tokens)):]
    loss = mlm_validation_loss(model, held_out)
    assert abs(loss - record["val_mlm_loss"]) < 1e-4, (loss, record)
    counts = torch.bincount(tokens - N_SPECIAL).double()
    freq = counts[counts > 0] / counts.sum()
    assert loss < -(freq * freq.log()).sum().item() - 0.5  # well below the unigram entropy


def test_train_script_round_trip(tmp_path, capsys):
    from dlbook.bert import load_bert
    from dlbook.cli import load_script

    module = load_script("train_bert")
    out = tmp_path / "bert.pt"
    module.main(["--out", str(out), "--steps", "2", "--batch_size", "2"])
    model, record = load_bert(out)
    assert record["steps"] == 2 and isinstance(model, BertForMLM)
    with pytest.raises(SystemExit, match="exists"):
        module.main(["--out", str(out), "--steps", "2"])
