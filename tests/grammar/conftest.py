from __future__ import annotations

import pytest

from chorusline.grammar import GrammarCompiler
from chorusline.runtime import LoadedModel


@pytest.fixture(scope="session")
def compiler(chat_model: LoadedModel) -> GrammarCompiler:
    return GrammarCompiler(chat_model.tokenizer, eos_token_ids=[2],
                           vocab_size=chat_model.config.vocab_size)
