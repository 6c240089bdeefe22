"""Child process of test_storage_durable: a StorageActor writing keys until it is killed.

    python tests/storage/durable_writer.py KIND DATA_DIR

Opens engine KIND on DATA_DIR, starts a StorageActor and ``WRITERS`` threads that each
tell Updates (at most ``IN_FLIGHT`` unacknowledged at a time). Each reply puts the key
on a queue (replies must not block); the main thread prints ``ACK <key>`` for each, so a
printed key was acknowledged, hence durable. Prints ``READY`` first. Stops by itself
after ``MAX_SECONDS`` or ``MAX_KEYS`` keys, in case nobody kills it.
"""

from __future__ import annotations

import queue
import sys
import threading
import time

from dynago.actors.storage import StorageActor
from dynago.actors.storage_messages import Update
from dynago.storage import open_engine

WRITERS = 4
IN_FLIGHT = 32
MAX_SECONDS = 60.0
MAX_KEYS = 200_000


def value_of(key: bytes) -> bytes:
    """The value written under ``key`` (the test checks it)."""
    return (key + b"=") * (100 // (len(key) + 1) + 1)


def main(kind: str, data_dir: str) -> None:
    storage = StorageActor.start(open_engine(kind, data_dir))
    acked: queue.SimpleQueue[bytes | Exception] = queue.SimpleQueue()
    deadline = time.monotonic() + MAX_SECONDS
    per_writer = MAX_KEYS // WRITERS

    def writer(index: int) -> None:
        slots = threading.Semaphore(IN_FLIGHT)
        for number in range(per_writer):
            if time.monotonic() > deadline or not slots.acquire(timeout=10):
                return
            key = b"w%d-%07d" % (index, number)
            new = value_of(key)

            def done(_value: bytes | None, key: bytes = key) -> None:
                slots.release()
                acked.put(key)

            def failed(error: Exception) -> None:
                slots.release()
                acked.put(error)

            storage.tell(Update(key, lambda _old, new=new: new, done, failed))

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(WRITERS)]
    print("READY", flush=True)
    for thread in threads:
        thread.start()
    printed = 0
    while printed < MAX_KEYS and time.monotonic() < deadline:
        try:
            item = acked.get(timeout=1.0)
        except queue.Empty:
            continue
        if isinstance(item, Exception):
            print(f"ERROR {item}", flush=True)
            continue
        sys.stdout.write(f"ACK {item.decode()}\n")
        sys.stdout.flush()
        printed += 1
    storage.stop(timeout=10)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
