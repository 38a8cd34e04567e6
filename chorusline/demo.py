"""``chorusline demo``: one turn through the whole supervised tree, with a fault.

It starts the chat tree on embedded defaults (SQLite in a temporary folder, in-process
rate limits, the bundled SmolLM2 model, CPU), streams a reply to one question through a
stored conversation, kills the GPU worker halfway to show the stream carrying on, and
prints the actor tree. Everything goes through ``ChatService``'s facades, as any
embedding application's code would.
"""

from __future__ import annotations

import sys
import tempfile

from chorusline.chat import ChatSettings


async def demo(question: str, max_tokens: int, kill_worker: bool) -> None:
    from chorusline.chat import ChatRequest, open_chat_service
    from chorusline.protocols import SamplingParams
    from chorusline.runtime import EngineConfig

    with tempfile.TemporaryDirectory() as folder:
        settings = ChatSettings(database_url=f"sqlite:///{folder}/demo.db",
                                engine=EngineConfig(kv_cache_bytes=128 * 1024 * 1024))
        print("loading the model and starting the actor tree...", file=sys.stderr)
        async with open_chat_service(settings) as chat:
            user = await chat.accounts.create_user("demo")
            issued = await chat.accounts.create_api_key(user.id, tier="plus")
            principal = await chat.accounts.authenticate(issued.plaintext)
            conversation = await chat.conversations.create(principal, title="demo")
            params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
            handle = await chat.chat(principal, ChatRequest(params, conversation.id, question))
            print(f"you> {question}\nbot> ", end="", flush=True)
            tokens = 0
            async for chunks in handle.stream:
                for chunk in chunks:
                    print(chunk.text, end="", flush=True)
                    tokens += len(chunk.token_ids)
                    if kill_worker and tokens >= 4 and chat.admin.kill_gpu_worker():
                        kill_worker = False
                        print(" [gpu worker killed] ", end="", flush=True)
            await handle.persisted.wait()
            print()
            stored = (await chat.conversations.messages(principal, conversation.id))[-1]
            print(f"stored reply: status={stored.status.value}, "
                  f"{stored.completion_tokens} completion tokens", file=sys.stderr)
            print_tree(chat.admin.snapshot()["tree"])


def print_tree(node: dict[str, object], depth: int = 0) -> None:
    label = f"{node.get('path') or '/'} [{node.get('kind')}, {node.get('state')}"
    label += f", restarts={node.get('restarts')}]"
    print("  " * depth + label, file=sys.stderr)
    children = node.get("children")
    if isinstance(children, list):
        for child in children:
            print_tree(child, depth + 1)
