"""``serve``'s model flags: what they make of the served models, and the one-line
usage error each mistake gets."""

from __future__ import annotations

import pytest

from chorusline.chat import BUNDLED_MODELS, ModelSettings
from chorusline.cli import build_parser
from chorusline.model_flags import forwarded, model_settings, shared_kv_cache_mb


def parsed(*flags: str) -> object:
    return build_parser().parse_args(["serve", *flags])


@pytest.fixture(autouse=True)
def _no_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODEL", "FALLBACK", "ALIAS", "KV_CACHE_MB"):
        monkeypatch.delenv(f"CHORUSLINE_{name}", raising=False)


def test_no_flag_serves_both_bundled_models() -> None:
    assert model_settings(parsed()) == BUNDLED_MODELS  # type: ignore[arg-type]


def test_flags_name_paths_budgets_fallbacks_and_aliases() -> None:
    args = parsed("--model", "smollm2-135m-instruct", "--model", "mine=/models/mine.gguf",
                  "--kv-cache-mb", "256", "--kv-cache-mb", "mine=64",
                  "--fallback", "mine=smollm2-135m-instruct", "--alias", "mine=big")
    small, mine = model_settings(args)  # type: ignore[arg-type]
    assert small.name == "smollm2-135m-instruct" and small.fallback == ()  # gemma not served
    assert mine == ModelSettings("mine", path="/models/mine.gguf", kv_cache_mb=64,
                                 aliases=("big",), fallback=("smollm2-135m-instruct",))
    assert shared_kv_cache_mb(args) == 256  # type: ignore[arg-type]
    assert forwarded(args) == [  # type: ignore[arg-type]
        "--model", "smollm2-135m-instruct", "--model", "mine=/models/mine.gguf",
        "--kv-cache-mb", "256", "--kv-cache-mb", "mine=64",
        "--fallback", "mine=smollm2-135m-instruct", "--alias", "mine=big"]


def test_the_variables_hold_the_same_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUSLINE_MODEL", "gemma-3-270m, smollm2-135m-instruct")
    monkeypatch.setenv("CHORUSLINE_KV_CACHE_MB", "gemma-3-270m=128")
    gemma, small = model_settings(parsed())  # type: ignore[arg-type]
    assert (gemma.name, gemma.kv_cache_mb, small.name) == ("gemma-3-270m", 128,
                                                           "smollm2-135m-instruct")
    # A flag replaces the variable's entries.
    monkeypatch.delenv("CHORUSLINE_KV_CACHE_MB")
    (only,) = model_settings(parsed("--model", "smollm2-135m-instruct"))  # type: ignore[arg-type]
    assert only.name == "smollm2-135m-instruct"


@pytest.mark.parametrize(("flags", "message"), [
    (["--model", "mine"], "'mine': not a bundled model"),
    (["--model", "smollm2-135m-instruct", "--model", "smollm2-135m-instruct"], "twice"),
    (["--model", "=x"], "expected NAME or NAME=PATH"),
    (["--fallback", "gemma-3-270m=gpt-9"], "names 'gpt-9', which is not served"),
    (["--kv-cache-mb", "ghost=64"], "names 'ghost', which is not served"),
    (["--kv-cache-mb", "gemma-3-270m=0"], "at least 1"),
    (["--kv-cache-mb", "lots"], "not a whole number"),
    (["--alias", "smollm2-135m-instruct"], "expected NAME=VALUE"),
])
def test_mistakes_are_one_line_reasons(flags: list[str], message: str) -> None:
    args = parsed(*flags)
    with pytest.raises(ValueError, match=message):
        model_settings(args)  # type: ignore[arg-type]
        shared_kv_cache_mb(args)  # type: ignore[arg-type]
