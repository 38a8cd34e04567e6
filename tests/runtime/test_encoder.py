"""The BERT encoder forward: against transformers' BertModel on a small random model,
and the padding rule that makes batching sound."""

from __future__ import annotations

import pytest
import torch
import transformers

from chorusline.runtime import BertConfig, BertEncoder
from chorusline.runtime.encoder import cls_pool, mean_pool

CONFIG = {"vocab_size": 97, "hidden_size": 48, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 96, "max_position_embeddings": 40,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "pad_token_id": 0,
          "hidden_act": "gelu"}


@pytest.fixture(scope="module")
def reference() -> transformers.BertModel:
    torch.manual_seed(0)
    model = transformers.BertModel(transformers.BertConfig(**CONFIG),
                                   add_pooling_layer=False)
    return model.eval()


@pytest.fixture(scope="module")
def encoder(reference: transformers.BertModel) -> BertEncoder:
    return BertEncoder(BertConfig.from_json(CONFIG), reference.state_dict())


def test_matches_transformers_with_padding(reference: transformers.BertModel,
                                           encoder: BertEncoder) -> None:
    rows = [[5, 9, 11, 3], [7, 2], [1, 4, 8, 16, 32, 64, 31, 12, 6]]
    ids, mask = encoder.pad(rows)
    ours = encoder.forward(ids, mask)
    with torch.no_grad():
        theirs = reference(input_ids=ids, attention_mask=mask.long()).last_hidden_state
    for row, length in enumerate(len(r) for r in rows):
        torch.testing.assert_close(ours[row, :length], theirs[row, :length],
                                   atol=1e-5, rtol=1e-5)


def test_a_sequence_is_the_same_alone_or_batched(encoder: BertEncoder) -> None:
    alone = encoder.forward(*encoder.pad([[3, 1, 4, 1, 5]]))
    ids, mask = encoder.pad([[3, 1, 4, 1, 5], list(range(1, 30))])
    batched = encoder.forward(ids, mask)
    torch.testing.assert_close(batched[0, :5], alone[0], atol=1e-5, rtol=1e-5)
    pooled_alone = mean_pool(alone, torch.ones(1, 5, dtype=torch.bool))
    torch.testing.assert_close(mean_pool(batched, mask)[0], pooled_alone[0],
                               atol=1e-5, rtol=1e-5)


def test_pooling_ignores_padding() -> None:
    hidden = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    mask = torch.tensor([[True, True, False]])
    assert mean_pool(hidden, mask).tolist() == [[2.0, 3.0]]
    assert cls_pool(hidden, mask).tolist() == [[1.0, 2.0]]


def test_pad_refuses_empty_and_overlong_sequences(encoder: BertEncoder) -> None:
    with pytest.raises(ValueError, match="at least one token"):
        encoder.pad([[1], []])
    with pytest.raises(ValueError, match="positions"):
        encoder.pad([[1] * 41])


def test_config_refuses_what_the_forward_does_not_implement() -> None:
    with pytest.raises(ValueError, match="hidden_act"):
        BertConfig.from_json({**CONFIG, "hidden_act": "relu"})
    with pytest.raises(ValueError, match="position_embedding_type"):
        BertConfig.from_json({**CONFIG, "position_embedding_type": "relative_key"})
