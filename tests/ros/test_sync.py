"""ApproxTimePairer: pairing within slop, bounded queues, out-of-order arrival, time jumps."""
from __future__ import annotations

import threading

import pytest

from ppd_ros.errors import ConfigError
from ppd_ros.ros.sync import ApproxTimePairer

MS = 1_000_000


def test_same_stamps_pair_immediately_in_either_order() -> None:
    p = ApproxTimePairer(slop_s=0.005, queue_size=5)
    assert p.add_image(100 * MS, "img0") == []
    assert p.add_info(100 * MS, "info0") == [("img0", "info0")]
    assert p.add_info(133 * MS, "info1") == []  # camera_info first this time
    assert p.add_image(133 * MS, "img1") == [("img1", "info1")]
    c = p.counters
    assert c["paired"] == 2 and c["pending_images"] == 0 and c["pending_infos"] == 0
    assert sum(p.dropped.values()) == 0


def test_pairs_closest_within_slop() -> None:
    p = ApproxTimePairer(slop_s=0.010, queue_size=10)
    p.add_info(95 * MS, "a")
    p.add_info(101 * MS, "b")
    assert p.add_image(100 * MS, "img") == [("img", "b")]  # b is 1 ms away (after), a 5 ms (before)
    assert p.dropped["info_unused"] == 1  # 'a' can never be closer to a later image


def test_waits_for_a_later_info_before_deciding() -> None:
    p = ApproxTimePairer(slop_s=0.010, queue_size=10)
    p.add_info(96 * MS, "early")
    assert p.add_image(100 * MS, "img") == []  # a closer info may still come
    assert p.add_info(99 * MS, "closer") == []  # still before the image
    assert p.add_info(130 * MS, "late") == [("img", "closer")]


def test_outside_slop_is_dropped_as_no_match() -> None:
    p = ApproxTimePairer(slop_s=0.002, queue_size=10)
    p.add_image(100 * MS, "img")
    assert p.add_info(110 * MS, "far") == []
    assert p.dropped["no_match"] == 1
    assert p.add_image(110 * MS, "img2") == [("img2", "far")]


def test_queues_are_bounded_and_drops_counted() -> None:
    p = ApproxTimePairer(slop_s=0.001, queue_size=3)
    for i in range(100):  # camera_info never arrives: images pile up, only 3 kept
        p.add_image(i * 33 * MS, i)
        assert p.counters["pending_images"] <= 3
    assert p.dropped["image_overflow"] == 97
    q = ApproxTimePairer(slop_s=0.001, queue_size=3)
    for i in range(50):
        q.add_info(i * MS, i)
        assert q.counters["pending_infos"] <= 3
    assert q.dropped["info_overflow"] == 47
    # the kept images still pair once their camera_infos come
    out = []
    for i in (97, 98, 99):
        out += p.add_info(i * 33 * MS, f"info{i}")
    assert out == [(97, "info97"), (98, "info98"), (99, "info99")]


def test_out_of_order_and_duplicates_dropped() -> None:
    p = ApproxTimePairer(slop_s=0.001, queue_size=5, reset_after_s=1.0)
    p.add_image(500 * MS, "a")
    assert p.add_image(400 * MS, "older") == []  # 100 ms back: out of order, not a reset
    assert p.add_image(500 * MS, "dup") == []
    assert p.dropped["out_of_order"] == 1 and p.dropped["duplicate"] == 1
    assert p.add_info(500 * MS, "ia") == [("a", "ia")]
    assert p.add_info(500 * MS, "ia-again") == []  # a republished camera_info adds nothing
    assert p.counters["resets"] == 0


def test_time_jump_back_resets() -> None:
    p = ApproxTimePairer(slop_s=0.001, queue_size=5, reset_after_s=1.0)
    for i in range(3):
        p.add_image(10_000 * MS + i * 33 * MS, i)
    p.add_info(9_000 * MS, "stale")  # older than every pending image: never usable
    assert p.dropped["info_unused"] == 1 and p.counters["pending_infos"] == 0
    # bag loops: stamps jump back 10 s
    assert p.add_image(0, "restart") == []
    c = p.counters
    assert c["resets"] == 1 and c["time_jump"] == 3 and c["pending_images"] == 1
    assert p.add_info(0, "i0") == [("restart", "i0")]


def test_no_camera_info_mode() -> None:
    p = ApproxTimePairer(slop_s=0.001, queue_size=2, require_info=False)
    assert p.add_image(1 * MS, "a") == [("a", None)]
    assert p.add_image(2 * MS, "b") == [("b", None)]
    p.add_info(3 * MS, "i3")  # from now on images are paired
    assert p.add_image(3 * MS, "c") == [("c", "i3")]
    p.reset()
    assert p.add_image(4 * MS, "d") == [("d", None)]


def test_stale_infos_pruned() -> None:
    p = ApproxTimePairer(slop_s=0.001, queue_size=100)
    p.add_image(1000 * MS, "img")
    p.add_info(1000 * MS, "i")
    for i in range(10):  # infos older than every future image are useless
        p.add_info(1001 * MS + i, i)
    p.add_image(2000 * MS, "late")
    assert p.counters["pending_infos"] == 0 and p.dropped["info_unused"] == 10


@pytest.mark.parametrize("kw", [{"slop_s": -1, "queue_size": 1}, {"slop_s": 0.1, "queue_size": 0},
                                {"slop_s": float("nan"), "queue_size": 1}])
def test_bad_config(kw: dict) -> None:
    with pytest.raises(ConfigError):
        ApproxTimePairer(**kw)


def test_thread_safety_every_image_accounted() -> None:
    p = ApproxTimePairer(slop_s=0.0005, queue_size=8)
    n = 2000
    pairs: list = []
    lock = threading.Lock()

    def feed(add, tag: str) -> None:
        for i in range(n):
            got = add(i * MS, (tag, i))
            with lock:
                pairs.extend(got)

    threads = [threading.Thread(target=feed, args=(p.add_image, "img")),
               threading.Thread(target=feed, args=(p.add_info, "info"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    c = p.counters
    assert all(img[1] == info[1] for img, info in pairs)  # only equal stamps fit a 0.5 ms slop
    assert c["paired"] == len(pairs)
    assert c["paired"] + c["no_match"] + c["image_overflow"] + c["pending_images"] == n
