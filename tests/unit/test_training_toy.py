"""A toy word-level task for the tiny random encoders, and the batching tests that use it.

The toy task: a sentence is positive when it is made of "good" words. The tokenizer
maps each word to its own id (vocabulary of 100 words, inside the tiny encoders' 120).
"""

from __future__ import annotations

import random

import pytest
import torch

from adapters.data import Example, TaskSpec
from adapters.training.batching import collate, encode_examples, eval_order, train_order

WORDS = [f"w{i}" for i in range(90)]
GOOD = WORDS[:10]
NEUTRAL = WORDS[10:]
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
TOY_SPEC = TaskSpec("toy", ("neutral", "good"), False, ("accuracy",), "accuracy")
TOY_REGRESSION = TaskSpec("toyreg", (), True, ("pearson", "spearman"), "spearman")


def toy_tokenizer():
    """A fast word-level tokenizer with BERT-style [CLS] a [SEP] b [SEP] templates."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIAL + WORDS)}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def toy_examples(n: int, seed: int, regression: bool = False) -> list[Example]:
    """Half the sentences are made of good words (label 1, or 1.0 for regression)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        positive = i % 2 == 0
        words = rng.choices(GOOD if positive else NEUTRAL, k=rng.randint(3, 9))
        label = (1.0 if positive else 0.0) if regression else int(positive)
        out.append(Example(" ".join(words), None, label))
    rng.shuffle(out)
    return out


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread (and a busy machine hurts two badly)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tokenizer():
    return toy_tokenizer()


def test_encoding_adds_special_tokens_and_keeps_labels(tokenizer):
    data = encode_examples(tokenizer, toy_examples(6, 0), max_length=8, regression=False)
    assert len(data) == 6 and data.labels.dtype == torch.long
    assert all(ids[0] == 2 and ids[-1] == 3 and len(ids) <= 8 for ids in data.input_ids)
    pairs = encode_examples(tokenizer, [Example("w1 w2", "w3", 0.5)], 16, regression=True)
    assert pairs.has_pairs and pairs.token_type_ids[0] == [0, 0, 0, 0, 1, 1]
    assert pairs.labels.dtype == torch.float32


def test_mixed_pairs_are_refused(tokenizer):
    with pytest.raises(ValueError, match="text pair"):
        encode_examples(tokenizer, [Example("w1", "w2", 0), Example("w3", None, 1)], 8, False)


def test_collate_pads_to_the_longest_row(tokenizer):
    data = encode_examples(tokenizer, toy_examples(5, 1), 16, False)
    batch = collate(data, [0, 3, 4])
    lengths = [len(data.input_ids[i]) for i in (0, 3, 4)]
    assert batch.input_ids.shape == (3, max(lengths))
    assert batch.attention_mask.sum(1).tolist() == lengths
    assert (batch.input_ids[batch.attention_mask == 0] == data.pad_id).all()
    assert batch.labels.tolist() == [int(data.labels[i]) for i in (0, 3, 4)]


@pytest.mark.parametrize("grouped", [True, False])
def test_train_order_covers_each_example_once_in_a_seeded_order(tokenizer, grouped):
    data = encode_examples(tokenizer, toy_examples(50, 2), 16, False)

    def epoch(seed):
        return train_order(data, 8, torch.Generator().manual_seed(seed), grouped)

    batches = epoch(0)
    assert sorted(i for b in batches for i in b) == list(range(50))
    assert all(len(b) <= 8 for b in batches)
    assert batches == epoch(0) and batches != epoch(1)


def test_eval_order_sorts_by_length(tokenizer):
    data = encode_examples(tokenizer, toy_examples(30, 3), 16, False)
    flat = [i for b in eval_order(data, 7) for i in b]
    lengths = [len(data.input_ids[i]) for i in flat]
    assert sorted(flat) == list(range(30)) and lengths == sorted(lengths, reverse=True)
