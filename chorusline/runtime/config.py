"""Decoder hyper-parameters (Llama and Gemma 3), read from the model file, not hard-coded.

GGUF and Hugging Face spell the same facts differently; both constructors normalise them
into one frozen value so that the torch model never needs to know where weights came from.
Fields past ``architecture`` describe what Gemma 3 adds (sliding-window layers with their
own RoPE base, a query scale, GELU); their defaults mean "as Llama does".
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_ARCHITECTURES = frozenset({"llama", "gemma3"})

#: HF ``layer_types`` values.
SLIDING, FULL = "sliding_attention", "full_attention"
#: Gemma 3's every-sixth-layer-is-global pattern. GGUF has no key for it: llama.cpp and
#: transformers both hard-code 6 for ``gemma3``, and so do we.
GEMMA3_SLIDING_PATTERN = 6
#: The RoPE base of Gemma 3's sliding-window layers. The GGUF gives only the global base
#: (``rope.freq_base``, 10^6); transformers' ``Gemma3TextConfig`` defaults the local base
#: (``rope_local_base_freq``) to 10^4, as does llama.cpp, so it is taken from there.
GEMMA3_LOCAL_ROPE_THETA = 10_000.0


@dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a decoder (Hugging Face config field names)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    bos_token_id: int | None
    eos_token_id: int | None
    # Every id that ends a generation; `eos_token_id` is its first element when present.
    eos_token_ids: tuple[int, ...] = ()
    rope_scaling: dict[str, Any] | None = field(default=None, hash=False, compare=True)
    attention_bias: bool = False
    mlp_bias: bool = False
    architecture: str = "llama"
    #: One HF layer type per layer (``SLIDING`` or ``FULL``); empty: every layer is full.
    layer_types: tuple[str, ...] = ()
    #: Keys a sliding layer's query sees, itself included (HF: ``kv > q - window``).
    sliding_window: int | None = None
    #: RoPE base of sliding layers (None: ``rope_theta``, as every layer of Llama).
    rope_local_theta: float | None = None
    #: Attention scale is ``query_pre_attn_scalar ** -0.5`` (None: ``head_dim``).
    query_pre_attn_scalar: float | None = None
    hidden_activation: str = "silu"

    def is_sliding(self, layer: int) -> bool:
        return bool(self.layer_types) and self.layer_types[layer] == SLIDING

    @property
    def attention_scale(self) -> float:
        return 1.0 / math.sqrt(self.query_pre_attn_scalar or self.head_dim)

    @property
    def num_key_value_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_gguf_metadata(
        cls,
        metadata: Mapping[str, Any],
        *,
        tensor_names: Collection[str] | None = None,
    ) -> ModelConfig:
        """Build from GGUF key/values (already decoded to Python values).

        GGUF has no "tied embeddings" flag: a file without `output.weight` is tied.  Pass the
        file's tensor names so that can be decided; without them, tied is assumed.
        """
        arch = str(metadata.get("general.architecture", ""))
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ValueError(
                f"unsupported GGUF architecture {arch!r} (supported: gemma3, llama)")

        def req(key: str) -> Any:
            full = f"{arch}.{key}"
            if full not in metadata:
                raise ValueError(f"GGUF metadata lacks required key {full!r}")
            return metadata[full]

        def opt(key: str, default: Any) -> Any:
            return metadata.get(f"{arch}.{key}", default)

        hidden = int(req("embedding_length"))
        heads = int(req("attention.head_count"))
        kv_heads = int(opt("attention.head_count_kv", heads))
        head_dim = int(opt("attention.key_length", opt("rope.dimension_count", hidden // heads)))
        tokens = metadata.get("tokenizer.ggml.tokens")
        vocab = int(opt("vocab_size", len(tokens) if tokens is not None else 0))
        if vocab <= 0:
            raise ValueError("GGUF metadata gives no vocabulary size")
        tied = True if tensor_names is None else "output.weight" not in tensor_names
        bos = metadata.get("tokenizer.ggml.bos_token_id")
        eos = metadata.get("tokenizer.ggml.eos_token_id")
        eos_ids: list[int] = [int(eos)] if eos is not None else []
        eot = metadata.get("tokenizer.ggml.eot_token_id")
        if eot is not None and int(eot) not in eos_ids:
            eos_ids.append(int(eot))
        return cls(
            vocab_size=vocab,
            hidden_size=hidden,
            intermediate_size=int(req("feed_forward_length")),
            num_hidden_layers=int(req("block_count")),
            num_attention_heads=heads,
            num_key_value_heads=kv_heads,
            head_dim=head_dim,
            rms_norm_eps=float(opt("attention.layer_norm_rms_epsilon", 1e-5)),
            rope_theta=float(opt("rope.freq_base", 10000.0)),
            rope_scaling=_gguf_rope_scaling(metadata, arch),
            max_position_embeddings=int(opt("context_length", 2048)),
            tie_word_embeddings=tied,
            bos_token_id=int(bos) if bos is not None else None,
            eos_token_id=eos_ids[0] if eos_ids else None,
            eos_token_ids=tuple(eos_ids),
            architecture=arch,
            **(_gemma3_fields(metadata, int(req("block_count")), head_dim)
               if arch == "gemma3" else {}),
        )

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any]) -> ModelConfig:
        """Build from a parsed Hugging Face `config.json`."""
        model_type = str(config.get("model_type", ""))
        archs = [str(a) for a in config.get("architectures") or []]
        if model_type != "llama" and not any(a.startswith("Llama") for a in archs):
            raise ValueError(
                f"unsupported Hugging Face model_type {model_type!r} (supported: llama)"
            )
        hidden = int(config["hidden_size"])
        heads = int(config["num_attention_heads"])
        eos_raw = config.get("eos_token_id")
        if eos_raw is None:
            eos_ids: tuple[int, ...] = ()
        elif isinstance(eos_raw, list | tuple):
            eos_ids = tuple(int(e) for e in eos_raw)
        else:
            eos_ids = (int(eos_raw),)
        bos = config.get("bos_token_id")
        scaling = config.get("rope_scaling")
        return cls(
            vocab_size=int(config["vocab_size"]),
            hidden_size=hidden,
            intermediate_size=int(config["intermediate_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=heads,
            num_key_value_heads=int(config.get("num_key_value_heads") or heads),
            head_dim=int(config.get("head_dim") or hidden // heads),
            rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
            rope_theta=float(config.get("rope_theta", 10000.0)),
            rope_scaling=dict(scaling) if scaling else None,
            max_position_embeddings=int(config.get("max_position_embeddings", 2048)),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            bos_token_id=int(bos) if bos is not None else None,
            eos_token_id=eos_ids[0] if eos_ids else None,
            eos_token_ids=eos_ids,
            attention_bias=bool(config.get("attention_bias", False)),
            mlp_bias=bool(config.get("mlp_bias", False)),
            architecture="llama",
        )


def _gemma3_fields(metadata: Mapping[str, Any], layers: int, head_dim: int) -> dict[str, Any]:
    """What Gemma 3 adds to the common keys: its layer pattern, window and local base."""
    window = metadata.get("gemma3.attention.sliding_window")
    if window is None:
        raise ValueError("GGUF metadata lacks required key 'gemma3.attention.sliding_window'")
    pattern = GEMMA3_SLIDING_PATTERN
    return {
        "layer_types": tuple(SLIDING if (i + 1) % pattern else FULL for i in range(layers)),
        "sliding_window": int(window),
        "rope_local_theta": GEMMA3_LOCAL_ROPE_THETA,
        "query_pre_attn_scalar": float(
            metadata.get("gemma3.attention.query_pre_attn_scalar", head_dim)),
        "hidden_activation": "gelu_pytorch_tanh",
    }


def _gguf_rope_scaling(metadata: Mapping[str, Any], arch: str) -> dict[str, Any] | None:
    """Translate llama.cpp's rope-scaling keys into the HF `rope_scaling` dict."""
    kind = metadata.get(f"{arch}.rope.scaling.type")
    factor = metadata.get(f"{arch}.rope.scaling.factor")
    if kind is None or str(kind) == "none" or factor is None:
        return None
    scaling: dict[str, Any] = {"rope_type": str(kind), "factor": float(factor)}
    original = metadata.get(f"{arch}.rope.scaling.original_context_length")
    if original is not None:
        scaling["original_max_position_embeddings"] = int(original)
    return scaling
