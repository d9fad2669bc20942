"""generation.sampling and .stream: KV-cache decoding equals HF generate; sampling math; stop strings."""

import math

import pytest
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import DynamicCache, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
from transformers.modeling_outputs import CausalLMOutputWithPast

from instructgpt.config import SamplingOptions
from instructgpt.generation.sampling import (
    apply_repetition_penalty,
    check_options,
    end_token_ids,
    generate,
    left_pad,
    next_tokens,
    top_k_filter,
    top_p_filter,
)
from instructgpt.generation.stream import TextStream, find_stop, partial_stop_length

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
TEXTS = [
    "The quick brown fox jumps over the lazy dog. Hello there, how are you today?",
    "你好，世界！今天天气很好。我们去公园散步吧。",
] * 4
CHINESE = "你好，世界！今天天气很好。"


@pytest.fixture(scope="module")
def tokenizer():
    """A byte-level BPE with few merges: most Chinese characters are split across several tokens."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=320, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(TEXTS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=specials[1:],
    )
    fast.chat_template = CHATML
    return fast


@pytest.fixture(scope="module")
def model(tokenizer):
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        initializer_range=0.2,  # larger than default so greedy outputs vary instead of repeating one token
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config).eval()


PROMPTS = [[5, 6, 7], list(range(20, 33)), list(range(40, 47)), [100]]


def hf_new_tokens(model, prompts, **kwargs):
    batch = left_pad(prompts, 0, "cpu")
    out = model.generate(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, pad_token_id=0, **kwargs
    )
    return out[:, batch.input_ids.shape[1] :].tolist()


# ------------------------------------------------------------------------------------ equality with HF


def test_batched_greedy_equals_unbatched_and_hf_generate(model, tokenizer):
    options = SamplingOptions(max_new_tokens=14)
    batched = generate(model, tokenizer, PROMPTS, options, eos_token_ids=[])
    alone = [generate(model, tokenizer, [p], options, eos_token_ids=[])[0] for p in PROMPTS]
    hf = hf_new_tokens(model, PROMPTS, do_sample=False, max_new_tokens=14, eos_token_id=None)
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone] == hf
    assert len({tuple(t) for t in hf}) == len(PROMPTS)  # the prompts really get different answers
    assert all(g.finish_reason == "length" and len(g.token_ids) == 14 for g in batched)
    assert [g.text for g in batched] == [
        tokenizer.decode(g.token_ids, skip_special_tokens=True) for g in alone
    ]


def test_rows_finishing_at_different_steps_match_hf(model, tokenizer):
    free = generate(model, tokenizer, PROMPTS, SamplingOptions(max_new_tokens=14), eos_token_ids=[])
    eos = free[1].token_ids[4]  # an id some rows produce early, others late or never
    ours = generate(model, tokenizer, PROMPTS, SamplingOptions(max_new_tokens=14), eos_token_ids=[eos])
    hf = hf_new_tokens(model, PROMPTS, do_sample=False, max_new_tokens=14, eos_token_id=eos)
    ends = set()
    for row, (gen, ref, unstopped) in enumerate(zip(ours, hf, free, strict=True)):
        cut = unstopped.token_ids.index(eos) + 1 if eos in unstopped.token_ids else 14
        assert gen.token_ids == unstopped.token_ids[:cut] == ref[:cut], row
        assert gen.finish_reason == ("eos" if eos in unstopped.token_ids else "length")
        ends.add(cut)
    assert len(ends) > 1


def test_sampling_equals_hf_sampling_with_the_same_seed(model, tokenizer):
    knobs = dict(temperature=0.9, top_k=30, top_p=0.85, repetition_penalty=1.3)
    ours = generate(
        model, tokenizer, [PROMPTS[1]], SamplingOptions(max_new_tokens=20, seed=3, **knobs), eos_token_ids=[]
    )
    torch.manual_seed(3)  # HF draws from the global generator; ours from a private one seeded the same
    ref = hf_new_tokens(model, [PROMPTS[1]], do_sample=True, max_new_tokens=20, eos_token_id=None, **knobs)
    assert ours[0].token_ids == ref[0]


def test_greedy_with_repetition_penalty_equals_hf(model, tokenizer):
    options = SamplingOptions(max_new_tokens=12, repetition_penalty=1.8)
    ours = [generate(model, tokenizer, [p], options, eos_token_ids=[])[0].token_ids for p in PROMPTS[:2]]
    ref = [
        hf_new_tokens(
            model, [p], do_sample=False, max_new_tokens=12, eos_token_id=None, repetition_penalty=1.8
        )[0]
        for p in PROMPTS[:2]
    ]
    assert ours == ref


def test_top_k_1_is_greedy_and_seeds_are_deterministic(model, tokenizer):
    greedy = generate(model, tokenizer, PROMPTS, SamplingOptions(max_new_tokens=10), eos_token_ids=[])
    top1 = generate(
        model,
        tokenizer,
        PROMPTS,
        SamplingOptions(max_new_tokens=10, temperature=1.0, top_k=1),
        eos_token_ids=[],
    )
    assert [g.token_ids for g in top1] == [g.token_ids for g in greedy]

    def sample(seed):
        options = SamplingOptions(max_new_tokens=10, temperature=1.5, seed=seed)
        return [g.token_ids for g in generate(model, tokenizer, PROMPTS, options, eos_token_ids=[])]

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_training_flag_is_restored_and_eos_defaults(model, tokenizer):
    model.train()
    generate(model, tokenizer, [PROMPTS[0]], SamplingOptions(max_new_tokens=2))
    assert model.training
    model.eval()
    ids = end_token_ids(model, tokenizer)  # eos, and ChatML's end of turn
    assert ids == sorted({tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")})


def test_bad_options_and_prompts_are_errors(model, tokenizer):
    with pytest.raises(ValueError, match="top_p"):
        generate(model, tokenizer, PROMPTS, SamplingOptions(top_p=0.0))
    with pytest.raises(ValueError, match="temperature"):
        generate(model, tokenizer, PROMPTS, SamplingOptions(temperature=-1.0))
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, tokenizer, [[1], []], SamplingOptions())
    assert generate(model, tokenizer, [], SamplingOptions()) == []
    assert generate(model, tokenizer, [[1]], SamplingOptions(max_new_tokens=0))[0].token_ids == []


# ------------------------------------------------------------------------------------ sampling math


def test_repetition_penalty_by_hand():
    logits = torch.tensor([[2.0, -1.0, 0.5, -3.0]])
    seen = torch.tensor([[True, True, False, False]])
    assert apply_repetition_penalty(logits, seen, 2.0).tolist() == [[1.0, -2.0, 0.5, -3.0]]


def test_top_k_and_top_p_by_hand():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    inf = float("-inf")
    assert top_k_filter(logits, 2)[0, 2] == inf and top_k_filter(logits, 2)[0, :2].isfinite().all()
    # ascending cumulative mass: 0.2, 0.5, 1.0; tokens with mass <= 1 - p are dropped
    assert top_p_filter(logits, 0.75).isinf().tolist() == [[False, False, True]]
    assert top_p_filter(logits, 0.5).isinf().tolist() == [[False, True, True]]
    assert top_p_filter(logits, 0.95).isinf().tolist() == [[False, False, False]]
    # the most likely token always survives
    assert top_p_filter(torch.tensor([[0.0, 0.0]]), 1e-6).isfinite().sum() == 1


def test_next_tokens_respects_filters():
    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0]]).repeat(64, 1)
    gen = torch.Generator().manual_seed(0)
    drawn = next_tokens(logits, None, SamplingOptions(temperature=1.0, top_k=2), gen)
    assert set(drawn.tolist()) == {1, 2}
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen[:, 1] = True
    assert next_tokens(logits, seen, SamplingOptions(repetition_penalty=2.0), None).tolist() == [2] * 64


def test_a_vanishing_temperature_is_greedy_not_nan():
    # logits / 1e-45 overflow to inf and softmax to NaN: torch.multinomial would raise
    logits = torch.tensor([[0.0, 5.0, 4.9, -1.0]]).repeat(8, 1)
    gen = torch.Generator().manual_seed(0)
    assert next_tokens(logits, None, SamplingOptions(temperature=1e-45), gen).tolist() == [1] * 8


def test_check_options_bounds_the_repetition_penalty():
    with pytest.raises(ValueError, match="repetition_penalty"):
        check_options(SamplingOptions(repetition_penalty=1e-45))


# ------------------------------------------------------------------------------------ text and stops


def test_stop_helpers():
    assert find_stop("abc\nUser: hi", ["\nUser:", "hi"]) == 3
    assert find_stop("abc", ["x"]) is None
    assert partial_stop_length("hello\nUs", ["\nUser:"]) == 3
    assert partial_stop_length("hello\nUser:", ["\nUser:"]) == 0  # a whole stop is found, not held
    assert partial_stop_length("hello", ["\nUser:"]) == 0


def test_stream_of_split_chinese_characters_has_no_replacement_chars(tokenizer):
    ids = tokenizer.encode(CHINESE)
    assert any("\ufffd" in tokenizer.decode([i]) for i in ids)  # characters really are split
    stream = TextStream(tokenizer)
    pieces = [stream.push(i) for i in ids] + [stream.close()]
    assert "".join(pieces) == stream.text == CHINESE
    assert not any("\ufffd" in p for p in pieces)


def test_stream_stop_string_across_tokens_is_held_back_and_removed(tokenizer):
    ids = tokenizer.encode(CHINESE)
    stream = TextStream(tokenizer, stops=["世界"])
    pieces = []
    for i in ids:
        pieces.append(stream.push(i))
        if stream.stopped:
            break
    assert stream.text == "你好，" == "".join(pieces)
    assert not any("世" in p for p in pieces)


def test_stream_releases_a_partial_stop_that_did_not_complete(tokenizer):
    stream = TextStream(tokenizer, stops=["fox!"])
    text = "The quick brown fox jumps"
    pieces = [stream.push(i) for i in tokenizer.encode(text)] + [stream.close()]
    assert "".join(pieces) == text and not stream.stopped


# ------------------------------------------------------------------------------------ scripted model


class ScriptedLM(torch.nn.Module):
    """Answers a prompt starting with token k with `scripts[k]`, then eos; records each forward's batch size.

    It keeps (token, position) of every input in the KV cache it is given, so it works through the engine's
    slot cache too: a row's script is its first visible token, its step the count of visible ones.
    """

    def __init__(self, scripts, vocab, eos):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.scripts, self.vocab, self.eos = scripts, vocab, eos
        self.batch_sizes = []

    def forward(self, input_ids, attention_mask=None, position_ids=None, cache=None, use_cache=True, **_):
        cache = cache if cache is not None else DynamicCache()
        entries = torch.stack([input_ids.float(), position_ids.float()], dim=-1)[:, None]  # (B, 1, T, 2)
        keys, _ = cache.update(entries, entries, 0)
        self.batch_sizes.append(input_ids.shape[0])
        visible = torch.ones(keys.shape[0], keys.shape[2], dtype=torch.bool)
        if attention_mask is not None:
            visible = attention_mask.bool()
        logits = torch.zeros(input_ids.shape[0], 1, self.vocab)
        for b in range(input_ids.shape[0]):
            seen = keys[b, 0, visible[b], 0].long().tolist()
            script = self.scripts[seen[0]]
            step = len(seen) - prompt_length(seen[0])
            logits[b, 0, script[step] if step < len(script) else self.eos] = 10.0
        return CausalLMOutputWithPast(logits=logits, cache=cache)


def prompt_length(key):
    return key % 3 + 2


def scripted(tokenizer, answers):
    scripts = {k: tokenizer.encode(text) for k, text in enumerate(answers, start=10)}
    prompts = [[k] + [3] * (prompt_length(k) - 1) for k in scripts]  # different lengths: some rows are padded
    return ScriptedLM(scripts, len(tokenizer), tokenizer.eos_token_id), prompts


def test_streamed_pieces_concatenate_to_each_text_and_rows_leave_the_batch(tokenizer):
    answers = ["你好，世界！", "Hello there, how are you today?", "今天天气很好。我们去公园散步吧。"]
    lm, prompts = scripted(tokenizer, answers)
    pieces = {i: [] for i in range(len(prompts))}
    gens = generate(
        lm, tokenizer, prompts, SamplingOptions(max_new_tokens=100), lambda i, p: pieces[i].append(p)
    )
    assert [g.text for g in gens] == answers
    assert ["".join(pieces[i]) for i in range(3)] == answers
    assert not any("\ufffd" in p for ps in pieces.values() for p in ps)
    assert all(g.finish_reason == "eos" and g.token_ids[-1] == tokenizer.eos_token_id for g in gens)
    longest = max(len(g.token_ids) for g in gens)
    assert lm.batch_sizes[0] == 3 and lm.batch_sizes[-1] == 1 and len(lm.batch_sizes) == longest
    assert sum(lm.batch_sizes) == sum(len(g.token_ids) for g in gens)  # no forward for finished rows


def test_stop_strings_end_rows_and_are_not_streamed(tokenizer):
    answers = ["Hello there, how are you today?", "你好，世界！今天天气很好。", "The quick brown fox"]
    lm, prompts = scripted(tokenizer, answers)
    pieces = {i: [] for i in range(len(prompts))}
    options = SamplingOptions(max_new_tokens=100, stop=["how are", "天气"])
    gens = generate(lm, tokenizer, prompts, options, lambda i, p: pieces[i].append(p))
    assert [g.text for g in gens] == ["Hello there, ", "你好，世界！今天", "The quick brown fox"]
    assert [g.finish_reason for g in gens] == ["stop", "stop", "eos"]
    assert ["".join(pieces[i]) for i in range(3)] == [g.text for g in gens]
    spelled = tokenizer.decode(gens[0].token_ids, skip_special_tokens=True)
    assert spelled.startswith("Hello there, how are") and len(spelled) < len(answers[0])


def test_max_new_tokens_ends_with_length(tokenizer):
    lm, prompts = scripted(tokenizer, ["你好，世界！今天天气很好。"] * 2)
    gens = generate(lm, tokenizer, prompts, SamplingOptions(max_new_tokens=4))
    assert all(g.finish_reason == "length" and len(g.token_ids) == 4 for g in gens)
    assert gens[0].text == tokenizer.decode(gens[0].token_ids)  # an unfinished character is kept as U+FFFD
