"""Child process of test_durability: logs impressions and feedback forever, printing the request
id of every feedback call once it is acknowledged, until the parent kills it with SIGKILL."""

from __future__ import annotations

import asyncio
import sys
import time

from rec_models.events import EventKind, EventLogSettings, Feedback, Impressions, SQLiteSink


async def client(sink: SQLiteSink, worker: int) -> None:
    for n in range(10**9):
        request_id = f"w{worker}-{n}"
        ranked = [(item, 1.0, 0.1) for item in (1, 2, 3)]
        sink.log_impressions(
            Impressions.ranked(
                request_id,
                ranked,
                model_version="1",
                variant="A",
                encoder_variant="int8",
                timestamp=time.time(),
                user_id=worker,
            )
        )
        await sink.record_feedback(Feedback(request_id, 2, EventKind.CLICK))
        print(request_id, flush=True)  # only after the commit


async def main(path: str, synchronous: str) -> None:
    # a loaded machine must not shed this test's feedback: allow the writer a minute's lag
    sink = SQLiteSink(path, EventLogSettings(synchronous=synchronous, max_lag_s=60.0))
    await asyncio.gather(*(client(sink, w) for w in range(8)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
