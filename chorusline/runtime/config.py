"""Llama-family model hyper-parameters, read from the model file rather than hard-coded.

GGUF and Hugging Face spell the same facts differently; both constructors normalise them
into one frozen value so that the torch model never needs to know where weights came from.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

SUPPORTED_ARCHITECTURES = frozenset({"llama"})


@dataclass(frozen=True)
class LlamaConfig:
    """Shape and numerics of a Llama-family decoder (HF `LlamaConfig` field names)."""

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

    @property
    def num_key_value_groups(self) -> int:
        return self.num_attention_heads // self.num_key_value_heads

    @classmethod
    def from_gguf_metadata(
        cls,
        metadata: Mapping[str, Any],
        *,
        tensor_names: Collection[str] | None = None,
    ) -> LlamaConfig:
        """Build from GGUF key/values (already decoded to Python values).

        GGUF has no "tied embeddings" flag: a file without `output.weight` is tied.  Pass the
        file's tensor names so that can be decided; without them, tied is assumed.
        """
        arch = str(metadata.get("general.architecture", ""))
        if arch not in SUPPORTED_ARCHITECTURES:
            raise ValueError(f"unsupported GGUF architecture {arch!r} (supported: llama)")

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
        )

    @classmethod
    def from_hf_config(cls, config: Mapping[str, Any]) -> LlamaConfig:
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
