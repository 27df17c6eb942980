"""Token source for examples/token_stream.escript: an async generator that yields the
words of a short text one at a time, awaiting a little before each, the way a language
model streams its tokens."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

TEXT = (
    "Erlang asks, Python answers word by word, and every token reaches the BEAM "
    "the moment it is ready, while the event loop keeps serving everyone else."
)


async def tokens(text: str = TEXT, delay: float = 0.02) -> AsyncIterator[str]:
    for word in text.split():
        await asyncio.sleep(delay)
        yield word
