"""The gate of server/slow_clients.py: at most `threads` requests compute at once in a worker."""

from __future__ import annotations

import threading
import time

from terminology.http.server.slow_clients import Gate


def test_the_gate_lets_at_most_n_threads_in_and_frees_a_place_on_error() -> None:
    gate = Gate(2)
    inside, most = [0], [0]
    lock = threading.Lock()

    def work(fail: bool) -> None:
        try:
            with gate:
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.02)
                with lock:
                    inside[0] -= 1
                if fail:
                    raise ValueError("a request that failed")
        except ValueError:
            pass

    threads = [threading.Thread(target=work, args=(i % 3 == 0,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert most[0] == 2
    for _ in range(2):  # both places are free again, failures included
        gate.tokens.get(timeout=1)
