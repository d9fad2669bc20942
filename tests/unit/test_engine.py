"""generation.engine: continuous batching on a slot KV cache. Greedy equals transformers `generate` (Llama
and Qwen2, padded, rows joining at different steps); a seeded answer is the same alone or among companions
that join at other steps with other options; slots are reused; cancellation frees a slot; stop strings,
eos and max_new_tokens per request; the window moves back when it reaches max_len."""

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from instructgpt.config import SamplingOptions
from instructgpt.generation.engine import Engine, Request, greedy_tokens
from instructgpt.generation.sampling import generate, left_pad

TEXTS = ["The quick brown fox jumps over the lazy dog. Hello there, how are you today?"] * 4
PROMPTS = [[5, 6, 7], list(range(20, 33)), list(range(40, 47)), [100], list(range(60, 80))]


@pytest.fixture(scope="module")
def tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")


def tiny(kind, vocab):
    torch.manual_seed(0)
    sizes = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    sizes |= dict(num_key_value_heads=2, max_position_embeddings=256, initializer_range=0.2)
    if kind == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(vocab_size=vocab, **sizes)).eval()
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab, bos_token_id=None, **sizes)).eval()


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def model(request, tokenizer):
    return tiny(request.param, len(tokenizer))


@pytest.fixture(scope="module")
def llama(tokenizer):
    return tiny("llama", len(tokenizer))


def hf_greedy(model, prompt, max_new_tokens):
    batch = left_pad([prompt], 0, "cpu")
    out = model.generate(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, do_sample=False,
        max_new_tokens=max_new_tokens, eos_token_id=None, pad_token_id=0,
    )  # fmt: skip
    return out[0, len(prompt) :].tolist()


def run_staggered(engine, requests, joins):
    """Submit requests[i] before step joins[i] (steps counted from 0), then run to the end."""
    step = 0
    while any(j >= step for j in joins) or engine.busy:
        for request, join in zip(requests, joins, strict=True):
            if join == step:
                engine.submit(request)
        engine.step()
        step += 1
    return [r.generation for r in requests]


def test_greedy_equals_transformers_with_rows_joining_at_different_steps(model, tokenizer):
    options = SamplingOptions(max_new_tokens=12, temperature=0.0)
    engine = Engine(model, tokenizer, max_batch=3, max_len=64, eos_token_ids=[])
    requests = [Request(p, options) for p in PROMPTS]
    gens = run_staggered(engine, requests, [0, 0, 2, 5, 6])
    expected = [hf_greedy(model, p, 12) for p in PROMPTS]
    assert [g.token_ids for g in gens] == expected
    assert len({tuple(t) for t in expected}) == len(PROMPTS)
    batched = generate(model, tokenizer, PROMPTS, options, eos_token_ids=[])  # padded, one prefill
    assert [g.token_ids for g in batched] == expected
    assert engine.counts["prefills"] >= 3 and not engine.rows


SAMPLED = SamplingOptions(max_new_tokens=16, temperature=1.0, top_k=40, top_p=0.9, repetition_penalty=1.2)


def test_a_seeded_answer_is_the_same_alone_and_amid_companions(llama, tokenizer):
    alone = generate(llama, tokenizer, [PROMPTS[1]], SamplingOptions(**{**vars(SAMPLED), "seed": 11}))[0]
    companions = [
        Request(PROMPTS[0], SamplingOptions(max_new_tokens=5, temperature=0.7, seed=1)),
        Request(PROMPTS[2], SamplingOptions(max_new_tokens=20, temperature=0.0, stop=["the"])),
        Request(PROMPTS[3], SamplingOptions(max_new_tokens=9, temperature=1.3, top_p=0.5, seed=2)),
    ]
    ours = Request(PROMPTS[1], SAMPLED, seed=11)
    engine = Engine(llama, tokenizer, max_batch=4, max_len=64, eos_token_ids=[])
    gens = run_staggered(engine, [companions[0], ours, companions[1], companions[2]], [0, 1, 3, 4])
    assert gens[1].token_ids == alone.token_ids and gens[1].text == alone.text
    other = generate(llama, tokenizer, [PROMPTS[1]], SamplingOptions(**{**vars(SAMPLED), "seed": 12}))[0]
    assert other.token_ids != alone.token_ids  # the seed matters, so the equality above means something
    # generate: prompt i draws with its own generator, so a prompt's answer ignores its batch companions
    pair = generate(
        llama, tokenizer, [PROMPTS[1], PROMPTS[1]], SamplingOptions(**{**vars(SAMPLED), "seed": 11})
    )
    assert pair[0].token_ids == alone.token_ids and pair[1].token_ids != alone.token_ids


def test_slots_are_reused_and_answers_equal_generate_alone(llama, tokenizer):
    options = [SamplingOptions(max_new_tokens=n, temperature=0.0) for n in (3, 10, 4, 8, 6)]
    engine = Engine(llama, tokenizer, max_batch=2, max_len=64, eos_token_ids=[])
    requests = [Request(p, o) for p, o in zip(PROMPTS, options, strict=True)]
    for request in requests:
        engine.submit(request)
    seen_rows = []
    while engine.busy:
        engine.step()
        seen_rows.append(len(engine.rows))
    assert max(seen_rows) == 2 and engine.counts["prefills"] >= 3
    for request, o in zip(requests, options, strict=True):
        assert (
            request.generation.token_ids
            == generate(llama, tokenizer, [request.prompt], o, eos_token_ids=[])[0].token_ids
        )


def test_cancelling_frees_the_slot(llama, tokenizer):
    ended = []
    engine = Engine(llama, tokenizer, max_batch=1, max_len=128, eos_token_ids=[])
    long = Request(PROMPTS[0], SamplingOptions(max_new_tokens=100, temperature=0.0), on_end=ended.append)
    short = Request(PROMPTS[1], SamplingOptions(max_new_tokens=4, temperature=0.0))
    engine.submit(long)
    engine.submit(short)
    for _ in range(3):
        engine.step()
    assert engine.rows[0].request is long and engine.waiting == 1
    long.cancelled.set()
    engine.run()
    assert ended == [None] and long.generation is None
    assert short.generation.token_ids == hf_greedy(llama, PROMPTS[1], 4)
    assert engine.counts["steps"] < 10  # the long request stopped at its cancellation


def test_stop_eos_and_max_new_tokens_per_request_in_one_batch(llama, tokenizer):
    free = generate(llama, tokenizer, PROMPTS[:3], SamplingOptions(max_new_tokens=14), eos_token_ids=[])
    eos = free[1].token_ids[5]
    stop = tokenizer.decode(free[0].token_ids[3:5])
    options = [
        SamplingOptions(max_new_tokens=14, stop=[stop]),
        SamplingOptions(max_new_tokens=14),
        SamplingOptions(max_new_tokens=3),
    ]
    pieces = {i: [] for i in range(3)}
    engine = Engine(llama, tokenizer, max_batch=3, max_len=64, eos_token_ids=[eos])
    requests = [
        Request(p, o, on_token=pieces[i].append)
        for i, (p, o) in enumerate(zip(PROMPTS[:3], options, strict=True))
    ]
    gens = run_staggered(engine, requests, [0, 1, 2])
    for i, (gen, o) in enumerate(zip(gens, options, strict=True)):
        assert gen == generate(llama, tokenizer, [PROMPTS[i]], o, eos_token_ids=[eos])[0]
        assert "".join(pieces[i]) == gen.text
    assert [g.finish_reason for g in gens] == ["stop", "eos", "length"]
    assert gens[1].token_ids == free[1].token_ids[: free[1].token_ids.index(eos) + 1]
    assert len(gens[2].token_ids) == 3 and stop not in gens[0].text


def test_the_window_moves_back_when_it_reaches_max_len(llama, tokenizer):
    options = SamplingOptions(max_new_tokens=20, temperature=0.0)
    engine = Engine(llama, tokenizer, max_batch=2, max_len=len(PROMPTS[4]) + 20, eos_token_ids=[])
    requests = [Request(p, options) for p in (PROMPTS[4], PROMPTS[1], PROMPTS[2], PROMPTS[0])]
    gens = run_staggered(engine, requests, [0, 6, 12, 18])
    assert engine.cache.capacity == engine.max_len
    assert [g.token_ids for g in gens] == [hf_greedy(llama, r.prompt, 20) for r in requests]


def test_requests_that_cannot_fit_are_refused(llama, tokenizer):
    engine = Engine(llama, tokenizer, max_batch=2, max_len=16, eos_token_ids=[])
    with pytest.raises(ValueError, match="exceeds max_len=16"):
        engine.submit(Request(list(range(10)), SamplingOptions(max_new_tokens=7)))
    with pytest.raises(ValueError, match="at least one token"):
        engine.submit(Request([], SamplingOptions(max_new_tokens=2)))
    with pytest.raises(ValueError, match="top_p"):
        engine.submit(Request([1], SamplingOptions(max_new_tokens=2, top_p=0.0)))
    done = Request([1, 2], SamplingOptions(max_new_tokens=0))
    engine.submit(done)
    assert done.generation.token_ids == [] and not engine.busy


def test_an_engine_that_went_idle_reuses_its_buffer(llama, tokenizer):
    options = SamplingOptions(max_new_tokens=6, temperature=0.0)
    engine = Engine(llama, tokenizer, max_batch=2, max_len=64, eos_token_ids=[])
    first, second = Request(PROMPTS[0], options), Request(PROMPTS[4], options)
    engine.submit(first)
    engine.run()
    buffer = engine.cache.layers[0].keys
    engine.submit(second)  # a longer prompt than the column the last run ended at
    engine.run()
    assert engine.cache.layers[0].keys is buffer
    assert [first.generation.token_ids, second.generation.token_ids] == [
        hf_greedy(llama, PROMPTS[0], 6),
        hf_greedy(llama, PROMPTS[4], 6),
    ]


def test_greedy_tokens_are_argmax_with_its_ties_and_nans():
    torch.manual_seed(0)
    logits = torch.randn(40, 3000).round(decimals=1)  # many tied maxima
    logits[1, [100, 200, 2900]] = 50.0
    logits[2, [7, 9]] = float("nan")
    logits[3] = float("-inf")
    logits[4, [3, 2000]] = float("inf")
    logits[5, [5, 1000]] = torch.tensor([float("inf"), float("nan")])
    expected = logits.argmax(dim=-1).tolist()
    assert greedy_tokens(logits) == expected
    assert expected[1:6] == [100, 7, 0, 3, 1000]
    assert [greedy_tokens(row[None])[0] for row in logits] == expected
