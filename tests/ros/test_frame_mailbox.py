"""FrameMailbox: latest-frame semantics, counters, blocking get, close, thread safety."""
from __future__ import annotations

import threading
import time

from ppd_ros.ros.frame_mailbox import FrameMailbox


def test_latest_wins_and_superseded_counted() -> None:
    box: FrameMailbox[int] = FrameMailbox()
    assert box.put(1) is None
    assert box.put(2) == 1
    assert box.put(3) == 2
    assert len(box) == 1 and box.pending
    assert box.get(timeout=0) == 3
    assert box.get(timeout=0) is None
    assert box.counters == {"put": 3, "taken": 1, "superseded": 2, "closed": 0}


def test_get_waits_and_times_out() -> None:
    box: FrameMailbox[str] = FrameMailbox()
    t0 = time.monotonic()
    assert box.get(timeout=0.05) is None
    assert time.monotonic() - t0 >= 0.04
    threading.Timer(0.05, box.put, args=("x",)).start()
    assert box.get(timeout=5.0) == "x"


def test_close_wakes_waiters_and_keeps_leftover() -> None:
    box: FrameMailbox[str] = FrameMailbox()
    got: list = []
    t = threading.Thread(target=lambda: got.append(box.get()))
    t.start()
    time.sleep(0.05)
    box.close()
    t.join(5)
    assert not t.is_alive() and got == [None]
    box2: FrameMailbox[str] = FrameMailbox()
    box2.put("left")
    box2.close()
    assert box2.put("late") is None and box2.counters["closed"] == 1
    assert box2.get(timeout=None) == "left"  # the owner can still count it
    assert box2.get(timeout=None) is None and box2.closed


def test_notify_event() -> None:
    ev = threading.Event()
    boxes = [FrameMailbox(notify=ev) for _ in range(3)]
    boxes[2].put("cam2")
    assert ev.wait(1.0)
    ev.clear()
    assert [b.get(timeout=0) for b in boxes] == [None, None, "cam2"]


def test_threads_every_frame_taken_or_superseded() -> None:
    box: FrameMailbox[int] = FrameMailbox()
    n_producers, per = 4, 2000
    taken: list[int] = []
    stop = threading.Event()

    def consumer() -> None:
        while not stop.is_set() or box.pending:
            item = box.get(timeout=0.01)
            if item is not None:
                taken.append(item)

    def producer(k: int) -> None:
        for i in range(per):
            box.put(k * per + i)

    c = threading.Thread(target=consumer)
    c.start()
    ps = [threading.Thread(target=producer, args=(k,)) for k in range(n_producers)]
    for p in ps:
        p.start()
    for p in ps:
        p.join()
    stop.set()
    c.join(10)
    counts = box.counters
    assert counts["put"] == n_producers * per
    assert counts["taken"] == len(taken) == len(set(taken))
    assert counts["taken"] + counts["superseded"] == counts["put"]
