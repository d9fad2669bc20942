"""likelihood: option log-probs equal plain transformers on each sequence alone, the ranking is by the
mean per token (checked on a unigram model whose scores are worked out in closed form), and perplexity
equals exp of transformers' own mean loss."""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from instructgpt.chat_format import Rendered, render_response, render_text, use_packed_attention
from instructgpt.evaluate.likelihood import option_logprobs, perplexity, rank_options
from instructgpt.records import Message
from instructgpt.sequences import pack_sequences
from instructgpt.tokenizer import ensure_pad_and_template, train_tokenizer

TEXTS = [
    "Is this review positive or negative? The film was great, really great.",
    "The plot was awful and the acting was worse. Negative.",
    "这部电影很好看，情感是积极的。那部电影很无聊，情感是消极的。",
    "Rate the product from 1 to 5 stars: 4 stars, would buy again.",
] * 8
PROMPT = [
    Message("system", "Answer with one label."),
    Message("user", "Is this review positive? It was great."),
]
OPTIONS = ["positive", "negative", "great, really great", "积极"]


@functools.cache
def tokenizer() -> PreTrainedTokenizerFast:
    tok = train_tokenizer(TEXTS, vocab_size=300)
    ensure_pad_and_template(tok)
    return tok


def tiny_model(packed: bool) -> LlamaForCausalLM:
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer()), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer().pad_token_id,
    )  # fmt: skip
    model = LlamaForCausalLM(config).double().eval()
    return use_packed_attention(model) if packed else model


def alone(model: nn.Module, rendered: Rendered) -> torch.Tensor:
    """Log-prob of each target of one unpacked sequence, by plain transformers: (n_targets,)."""
    ids = torch.tensor([rendered.input_ids])
    logps = model(ids).logits.log_softmax(-1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    return logps[torch.tensor(rendered.loss_mask[1:], dtype=torch.bool)]


@pytest.mark.parametrize("packed", [True, False], ids=["packed-attention", "transformers-attention"])
def test_option_logprobs_equal_each_option_alone(packed: bool) -> None:
    model, tok = tiny_model(packed), tokenizer()
    rendered = [render_response(tok, PROMPT, option) for option in OPTIONS]
    assert pack_sequences(rendered, 256, 0).packed.input_ids.shape[0] < len(OPTIONS)  # really packed
    got = option_logprobs(model, tok, PROMPT, OPTIONS, max_length=256, device="cpu").sums
    with torch.no_grad():
        expected = torch.stack([alone(model, r).sum() for r in rendered]).float()
    assert got.shape == (len(OPTIONS),) and not got.requires_grad
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
    # one sequence a row gives the same
    torch.testing.assert_close(
        option_logprobs(model, tok, PROMPT, OPTIONS, 0, "cpu").sums, got, rtol=1e-6, atol=1e-6
    )


def unigram_model(boost: dict[int, float]) -> LlamaForCausalLM:
    """The tiny model with its LM head replaced by a constant: logits = bias at every position, so
    log p(token) = log_softmax(bias)[token] whatever the context."""
    model = tiny_model(packed=True)
    head = nn.Linear(model.config.hidden_size, model.config.vocab_size, bias=True).double()
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    with torch.no_grad():
        for token, value in boost.items():
            head.bias[token] = value
    model.lm_head = head
    return model


def test_rank_options_picks_the_best_mean_where_the_sum_disagrees() -> None:
    tok = tokenizer()
    short, long = "积极", "positive positive positive positive positive"
    # The long option's words get logit 1, everything else 0. Its words are likelier than the short
    # option's, so its mean log-prob per target is higher; but it has many more targets, each costing
    # about log(V) ≈ 5.7 nats minus 1, so its sum is lower.
    model = unigram_model({t: 1.0 for t in tok(long, add_special_tokens=False)["input_ids"]})
    logp = model.lm_head.bias.detach().log_softmax(-1)
    targets = []
    for option in (short, long):
        r = render_response(tok, PROMPT, option)
        targets.append([t for t, m in zip(r.input_ids, r.loss_mask, strict=True) if m])
    sums = torch.tensor([float(logp[ids].sum()) for ids in targets])
    means = sums / torch.tensor([len(ids) for ids in targets])
    assert int(sums.argmax()) == 0 and int(means.argmax()) == 1  # the sum and the mean disagree

    scored = option_logprobs(model, tok, PROMPT, [short, long], 256, "cpu")
    torch.testing.assert_close(scored.sums, sums)
    best, scores = rank_options(scored)
    assert best == 1
    torch.testing.assert_close(scores, means)


def test_perplexity_of_one_text_is_exp_of_the_transformers_loss() -> None:
    model, tok = tiny_model(packed=True), tokenizer()
    text = "这部电影很好看 — the film was great."
    ids = torch.tensor([render_text(tok, text).input_ids])
    with torch.no_grad():
        loss = model(ids, labels=ids).loss  # mean NLL of tokens 1..n-1, each from the tokens before it
    assert perplexity(model, tok, [text], batch_size=4, max_length=128, device="cpu") == pytest.approx(
        math.exp(float(loss)), rel=1e-6
    )


@pytest.mark.parametrize("packed", [True, False], ids=["packed-attention", "transformers-attention"])
def test_perplexity_pools_tokens_over_texts_and_truncates(packed: bool) -> None:
    model, tok = tiny_model(packed), tokenizer()
    texts = ["The plot was awful.", "这部电影很好看", TEXTS[0], "4 stars", TEXTS[3] + " " + TEXTS[1]]
    max_length = 24
    nll, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = torch.tensor([render_text(tok, text).input_ids[:max_length]])
            n = ids.shape[1] - 1
            nll += float(model(ids, labels=ids).loss) * n
            count += n
    assert any(len(render_text(tok, t)) > max_length for t in texts)  # some are cut
    got = perplexity(model, tok, texts, batch_size=2, max_length=max_length, device="cpu")
    assert got == pytest.approx(math.exp(nll / count), rel=1e-6)


def test_scoring_restores_the_training_mode() -> None:
    model, tok = tiny_model(packed=True), tokenizer()
    model.train()
    option_logprobs(model, tok, PROMPT, OPTIONS, 256, "cpu")
    perplexity(model, tok, ["great"], 1, 16, "cpu")
    assert model.training
    model.eval()
    rank_options(option_logprobs(model, tok, PROMPT, OPTIONS, 256, "cpu"))
    assert not model.training


def test_bad_arguments_are_refused() -> None:
    model, tok = tiny_model(packed=True), tokenizer()
    with pytest.raises(ValueError, match="no options"):
        option_logprobs(model, tok, PROMPT, [], 256, "cpu")
    with pytest.raises(ValueError, match="more than max_length"):
        option_logprobs(model, tok, PROMPT, OPTIONS, 8, "cpu")
    with pytest.raises(ValueError, match="no texts"):
        perplexity(model, tok, [], 1, 16, "cpu")
    with pytest.raises(ValueError, match="no token to predict"):
        perplexity(model, tok, ["great film"], 1, 1, "cpu")
