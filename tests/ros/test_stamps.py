"""The stale-frame rule on its own and in the worker (no DDS): stamps from years ago and camera clocks
off by an hour still get depth; a frame behind its own stream is stale; the node-clock age limit is
opt-in; stamps that disagree with the node clock are reported in one line, again only on a big change."""
from __future__ import annotations

import time

from ppd_ros.ros.stamps import CLOCK_DISAGREEMENT_S, StampWatch, describe_offset, disagreement_line

from .node_support import wait_for
from .test_worker import WindowPipeline, frame, make_worker

S = 1_000_000_000
YEARS_AGO = 1_500_000_000 * S  # 2017-07-14: a bag recorded long ago, replayed without /clock


def test_stream_lag_rule() -> None:
    w = StampWatch(max_lag_s=1.0)
    now = time.time_ns()
    assert w.arrived(YEARS_AGO, now) is not None  # reported (years off the node clock) ...
    assert w.stale(YEARS_AGO, now) is None  # ... but not stale: the default compares stamps only
    w.arrived(YEARS_AGO + 3 * S, now)
    assert w.stale(YEARS_AGO + int(2.5 * S), now) is None  # 0.5 s behind the head
    why = w.stale(YEARS_AGO + 1 * S, now)
    assert why and "2.00 s before the newest frame" in why and "max_stream_lag 1 s" in why
    # the stream went back in time (bag loop, clock reset): the head restarts, nothing is stale
    w.arrived(YEARS_AGO - 60 * S, now)
    assert w.head_ns == YEARS_AGO - 60 * S and w.stale(YEARS_AGO - 60 * S, now) is None
    w.arrived(YEARS_AGO - 60 * S - S // 2, now)  # a small step back keeps the head
    assert w.head_ns == YEARS_AGO - 60 * S
    assert StampWatch(max_lag_s=0.0).stale(0, now) is None  # 0 disables
    w.reset()
    assert w.head_ns is None and w.stale(0, now) is None


def test_node_clock_age_is_opt_in() -> None:
    now = time.time_ns()
    default = StampWatch()
    assert default.max_age_ns == 0 and default.stale(now - 3600 * S, now) is None
    live = StampWatch(max_lag_s=1.0, max_age_s=1.0)
    live.arrived(now - 2 * S, now)
    why = live.stale(now - 2 * S, now)
    assert why and "2.00 s ago on the node clock" in why and "max_frame_age 1 s" in why
    assert live.stale(now - S // 2, now) is None
    assert "off" in default.rule().split(";")[1] and "1 s old" in live.rule()


def test_clock_disagreement_reported_once_and_again_on_a_big_change() -> None:
    w = StampWatch()
    now = time.time_ns()
    assert w.arrived(now - S // 10, now) is None  # transport latency: agrees
    assert w.arrived(now, now + int((CLOCK_DISAGREEMENT_S - 1) * S)) is None
    off = w.arrived(now + 3600 * S, now)  # camera clock 1 h ahead
    assert off == -3600 * S
    w.reported(off)
    for k in range(1, 20):  # the same offset, drifting by ms: quiet
        assert w.arrived(now + 3600 * S + k * S // 30, now + k * S // 30 + k * 1_000_000) is None
    off2 = w.arrived(now - 3600 * S, now)  # now 1 h behind: a big change, reported again
    assert off2 == 3600 * S
    w.reported(off2)
    assert w.arrived(now - 3600 * S - 10 * S, now) is None  # 10 s of 1 h: not a big change
    assert w.arrived(now, now) is None  # agrees again ...
    assert w.arrived(now - 3600 * S, now) == 3600 * S  # ... so the next disagreement is new
    assert describe_offset(int(1e8 * S)) == "3.2 years behind" and describe_offset(-3600 * S) == "1.0 h ahead of"
    line = disagreement_line("cam0", YEARS_AGO, now)
    assert "camera 'cam0'" in line and "2017-07-14" in line and "max_frame_age" in line and "\n" not in line


def feed_stamped(worker, stamp_ns: int, cam: int = 0) -> None:
    """What the node's callback does: count the arrival with its stamp, hand the frame over, wait."""
    worker.received(cam, stamp_ns)
    worker.submit(cam, frame(cam, stamp_ns=stamp_ns))
    assert wait_for(lambda: not worker.streams[cam].mailbox.pending, 5)
    time.sleep(0.02)


def test_worker_serves_old_and_offset_stamps_and_logs_one_line_each() -> None:
    worker, published, logs = make_worker(WindowPipeline(window=1), log_period=0.0)  # log_throttle 0
    worker.start()
    now = time.time_ns()
    starts = [YEARS_AGO, now + 3600 * S, now - 3600 * S]  # bag replay, camera clock +1 h, -1 h
    sent = [t0 + i * S // 10 for t0 in starts for i in range(3)]
    for stamp in sent:
        feed_stamped(worker, stamp)
    assert wait_for(lambda: len(published) == len(sent), 5)
    worker.stop()
    snap = worker.streams[0].stats.snapshot()
    assert snap.published == snap.received == len(sent) and snap.dropped_total == 0, snap
    assert [o.frame.stamp_ns for o in published] == sent  # stamps unchanged
    offset_lines = [t for t in logs if "the node clock (stamp" in t]
    assert len(offset_lines) == 3, logs  # one per clock, not one per frame
    assert "years behind" in offset_lines[0] and "1.0 h ahead of" in offset_lines[1] \
        and "1.0 h behind" in offset_lines[2]
    assert not any("stale" in t for t in logs)


def test_worker_drops_frames_behind_their_stream_and_counts_them() -> None:
    worker, published, logs = make_worker(WindowPipeline(window=1))
    t0 = YEARS_AGO
    worker.received(0, t0)
    worker.received(0, t0 + 2 * S)  # a newer frame arrived (say it waits for its camera_info) ...
    worker.submit(0, frame(0, stamp_ns=t0))  # ... so this one is 2 s behind its stream
    worker.start()
    assert wait_for(lambda: worker.streams[0].stats.snapshot().dropped.get("stale") == 1, 5)
    worker.submit(0, frame(0, stamp_ns=t0 + 2 * S))
    assert wait_for(lambda: len(published) == 1, 5)
    worker.stop()
    snap = worker.streams[0].stats.snapshot()
    assert snap.published + snap.dropped_total == snap.received == 2 and snap.dropped == {"stale": 1}
    assert any("2.00 s before the newest frame of its camera" in t for t in logs), logs


def test_worker_node_clock_age_opt_in() -> None:
    worker, published, logs = make_worker(WindowPipeline(window=1), max_age_s=1.0)
    worker.start()
    now = time.time_ns()
    feed_stamped(worker, YEARS_AGO)  # stamped on another clock: dropped only because of the opt-in
    feed_stamped(worker, time.time_ns())
    assert wait_for(lambda: len(published) == 1, 5)
    worker.stop()
    snap = worker.streams[0].stats.snapshot()
    assert snap.dropped == {"stale": 1} and snap.published == 1 and published[0].frame.stamp_ns > now
    assert any("on the node clock (max_frame_age 1 s); dropped" in t for t in logs), logs
