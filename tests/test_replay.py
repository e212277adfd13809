"""The replay/live seam (server/stream/replay.py), driven by scripts: events
from log pages and from the hub, socket states, no sockets and no timing."""

from __future__ import annotations

import random
from collections.abc import Mapping

import pytest

from server.core.events import StoredEvent
from server.core.frames import Frames
from server.core.topics import TopicFilter
from server.stream.replay import DRAIN, FIRST_PAGE, Done, Read, Replay, Send

LIMIT = 64 * 1024
BACKED_UP = LIMIT  # bytes waiting for a client that has fallen behind (any test limit)


def event(seq: int, project: str = "P1", size: int = 200) -> StoredEvent:
    return StoredEvent.from_dict(
        {
            "seq": seq,
            "project": project,
            "category": "construction",
            "agency": "AG",
            "region": None,
            "stage": "notice",
            "title": "t",
            "body": "x" * size,
            "data": {},
            "occurred_at": None,
            "published_at": "2026-12-01T09:30:00+08:00",
            "hash": "0" * 64,
        }
    )


class Log:
    """The log as the store answers a replay's reads (topics as the feed asks)."""

    def __init__(self, events: list[StoredEvent]) -> None:
        self.events = events

    def read(self, after: int, size: int, follow: Mapping[str, frozenset[str] | None]) -> list:
        wanted = TopicFilter(dict(follow))
        return [e for e in self.events if e.seq > after and wanted.matches(e)][:size]


def replay_of(
    since: int,
    topics: dict[str, frozenset[str] | None],
    followed: dict[str, tuple[frozenset[str] | None, int]] | None = None,
    sent_live: int = 0,
    limit: int = LIMIT,
) -> tuple[Replay, dict[str, tuple[frozenset[str] | None, int]]]:
    followed = dict(followed or {})
    earlier = TopicFilter({t: s for t, (s, _) in followed.items()})
    followed.update({t: (s, since) for t, s in topics.items()})
    return Replay(since, topics, earlier, sent_live, followed, limit), followed


def run(
    replay: Replay,
    log: Log,
    followed: Mapping[str, tuple[frozenset[str] | None, int]],
    congested: list[bool] | None = None,
) -> tuple[list[int], Done, list[object]]:
    """Carry the replay out as the feed does; (seqs sent, the Done, every action).

    `congested` says, step by step, whether the client has fallen behind
    (`BACKED_UP` bytes wait for it) or has taken everything (none wait)."""
    sent: list[int] = []
    actions: list[object] = []
    states = iter(congested or [])
    while True:
        action = replay.next(BACKED_UP if next(states, False) else 0, False)
        actions.append(action)
        if isinstance(action, Send):
            sent.append(action.frames.event.seq)
        elif isinstance(action, Read):
            follow = TopicFilter({t: s for t, (s, _) in followed.items()}).public()
            replay.page(log.read(action.after, action.size, follow))
        elif isinstance(action, Done):
            sent.extend(f.event.seq for f in action.flush)
            return sent, action, actions
        else:
            assert action is DRAIN


def test_a_replay_reads_the_log_then_is_done() -> None:
    log = Log([event(n) for n in range(1, 6)])
    replay, followed = replay_of(2, {"project:P1": None})
    sent, done, actions = run(replay, log, followed)
    assert sent == [3, 4, 5] and done.last == 5 and done.flush == []
    assert actions[0] == Read(2, FIRST_PAGE)


def test_live_events_during_the_replay_are_flushed_once_after_it() -> None:
    """The hub hands 4..7 while the first page (1..5) is being read: the replay
    sends 4 and 5 from the log, the flush only 6 and 7."""
    log = Log([event(n) for n in range(1, 6)])
    replay, followed = replay_of(0, {"project:P1": None})
    assert replay.next(0, False) == Read(0, FIRST_PAGE)
    for n in range(4, 8):
        log.events.append(event(n)) if n > 5 else None
        replay.hold(Frames(event(n)))
    replay.page(log.read(0, FIRST_PAGE, {"project:P1": None})[:5])
    sent, done, _ = run(replay, log, followed)
    assert sent == [1, 2, 3, 4, 5, 6, 7] and done.last == 7
    assert [f.event.seq for f in done.flush] == [6, 7]


def test_a_replay_that_catches_up_to_the_live_head_goes_live_with_nothing_held() -> None:
    log = Log([event(n) for n in range(1, 4)])
    replay, followed = replay_of(0, {"project:P1": None})
    replay.hold(Frames(event(3)))  # published before the read, and in it
    sent, done, _ = run(replay, log, followed)
    assert sent == [1, 2, 3] and done.flush == []


def test_a_congested_socket_waits_then_the_page_goes_on() -> None:
    log = Log([event(n) for n in range(1, 4)])
    replay, followed = replay_of(0, {"project:P1": None})
    # read, send 1, then congested (the rest is small: kept), then free again
    sent, _, actions = run(replay, log, followed, congested=[False, False, True, False])
    assert sent == [1, 2, 3]
    assert actions[:4] == [Read(0, FIRST_PAGE), actions[1], DRAIN, actions[3]]
    assert sum(1 for a in actions if isinstance(a, Read)) == 1  # the page was kept


def test_a_congested_socket_lets_go_of_a_large_rest_and_reads_it_again() -> None:
    limit = 16 * 1024
    log = Log([event(n, size=1500) for n in range(1, 12)])  # 10 events: more than limit / 4
    replay, followed = replay_of(0, {"project:P1": None}, limit=limit)
    sent, _, actions = run(replay, log, followed, congested=[False, False, True])
    assert sent == list(range(1, 12))  # each once, in order
    reads = [a for a in actions if isinstance(a, Read)]
    assert reads[:2] == [Read(0, FIRST_PAGE), Read(1, reads[1].size)]  # read again after 1
    assert actions[2] is DRAIN


def test_an_event_goes_out_only_while_it_leaves_half_the_limit_free() -> None:
    """What waits for the client plus the next event stays within half the
    limit: the other half is room for live events and replies. With nothing
    waiting, even an event bigger than that goes out."""
    limit = 16 * 1024
    log = Log([event(1, size=2000), event(2, size=2000), event(3, size=9000)])
    replay, _ = replay_of(0, {"project:P1": None}, limit=limit)

    def step(pending: int) -> object:  # the next action but reads, which are answered
        while isinstance(action := replay.next(pending, False), Read):
            replay.page(log.read(action.after, action.size, {"project:P1": None}))
        return action

    size = len(log.events[0].json)
    assert isinstance(step(limit // 2 - size), Send)  # just fits
    assert step(limit // 2 - size + 1) is DRAIN  # one byte too many
    assert isinstance(step(100), Send)
    assert step(100) is DRAIN  # 9000 bytes do not fit beside 100
    last = step(0)
    assert isinstance(last, Send) and last.frames.event.seq == 3


def test_an_event_on_two_followed_topics_is_sent_once() -> None:
    log = Log([event(1, "P1"), event(2, "P2"), event(3, "P1")])
    replay, followed = replay_of(0, {"project:P1": None, "category:construction": None})
    sent, _, _ = run(replay, log, followed)
    assert sent == [1, 2, 3]


def test_events_already_sent_live_on_an_earlier_topic_are_not_sent_again() -> None:
    """Following P1 live since 0, the client got 1..4; it now adds P2 with since 0."""
    log = Log([event(1, "P1"), event(2, "P2"), event(3, "P1"), event(4, "P2"), event(5, "P1")])
    replay, followed = replay_of(
        0, {"project:P2": None}, followed={"project:P1": (None, 0)}, sent_live=3
    )
    sent, _, _ = run(replay, log, followed)
    assert sent == [2, 4, 5]  # 1 and 3 went out live; 5 came after `sent_live`


def test_dropped_live_events_are_read_from_the_log_instead() -> None:
    """More live events than the limit holds during a page: they are let go,
    and the replay reads further rather than going live with a gap."""
    limit = 4096
    log = Log([event(1)])
    replay, followed = replay_of(0, {"project:P1": None}, limit=limit)
    assert isinstance(replay.next(0, False), Read)
    for n in range(2, 40):  # committed (in the log) and handed by the hub, during the read
        log.events.append(event(n))
        replay.hold(Frames(event(n)))
    replay.page(log.events[:1])  # the read began before they were committed
    sent, done, _ = run(replay, log, followed)
    assert sent == list(range(1, 40)), sent
    assert done.last == 39


def test_what_the_end_of_a_replay_hands_over_at_once_stays_within_a_quarter_of_the_limit() -> None:
    """Live events held while the last page is sent, as the socket backs up:
    the flush at the end goes to the sender in one go, whatever the socket's
    state, so it may hold no more than a quarter of the byte limit (as a page
    may). Two events of 40 % of the limit each are let go and read from the
    log instead, in pages that wait for room: the client is not cut off as
    lagging for events it was never too slow for."""
    limit = 16 * 1024
    big = int(limit * 0.4)
    log = Log([event(1, size=100)])
    replay, followed = replay_of(0, {"project:P1": None}, limit=limit)
    assert isinstance(replay.next(0, False), Read)
    replay.page(log.events[:1])
    for n in (2, 3):  # committed and handed by the hub while the page is out
        log.events.append(event(n, size=big))
        replay.hold(Frames(event(n, size=big)))
    sent, done, _ = run(replay, log, followed, congested=[False, True, False, False, False])
    assert sent == [1, 2, 3], sent
    assert sum(len(f.event.json) for f in done.flush) <= limit // 4, done.flush


def test_a_failed_socket_ends_the_replay_at_once() -> None:
    log = Log([event(n) for n in range(1, 6)])
    replay, _ = replay_of(0, {"project:P1": None})
    replay.hold(Frames(event(6)))
    assert isinstance(replay.next(0, False), Read)
    replay.page(log.events)
    assert isinstance(replay.next(0, False), Send)
    done = replay.next(0, True)
    assert isinstance(done, Done) and done.last == 6  # the held one is flushed (to nobody)
    assert replay.next(0, False) == Done([], 6)  # and it stays done, flushing nothing twice


def test_a_topic_given_up_during_the_replay_is_not_read_any_more() -> None:
    """An unfollow while the replay runs (a revoked token drops `supervision`, or
    the client unsubscribes): pages read after it leave the topic out."""
    log = Log([event(n, "P1" if n % 2 else "P2") for n in range(1, 41)])
    replay, followed = replay_of(0, {"project:P1": None, "project:P2": None})
    assert replay.next(0, False) == Read(0, FIRST_PAGE)
    replay.page(log.read(0, FIRST_PAGE, {"project:P1": None, "project:P2": None}))
    del followed["project:P2"]  # the feed's own map, which the replay reads too
    sent, _, _ = run(replay, log, followed)
    assert sent[:FIRST_PAGE] == list(range(1, FIRST_PAGE + 1))  # the page already read
    assert sent[FIRST_PAGE:] == list(range(FIRST_PAGE + 1, 41, 2))  # then P1 only


def test_pages_grow_from_the_first_to_what_fits_a_quarter_of_the_limit() -> None:
    limit = 1024 * 1024
    log = Log([event(n, size=100) for n in range(1, 3000)])
    replay, followed = replay_of(0, {"project:P1": None}, limit=limit)
    _, _, actions = run(replay, log, followed)
    sizes = [a.size for a in actions if isinstance(a, Read)]
    fit = (limit // 4) // len(event(1, size=100).json)  # later seqs take a few bytes more
    assert sizes[:3] == [FIRST_PAGE, 4 * FIRST_PAGE, 16 * FIRST_PAGE]
    assert all(0.95 * fit < size <= fit for size in sizes[3:-1]), (fit, sizes)


@pytest.mark.parametrize("seed", range(40))
def test_any_interleaving_sends_every_matching_event_once_in_order(seed: int) -> None:
    """Random pages, live commits between any two steps, congestion and a small
    limit: what goes out is exactly the matching events after `since`, in order."""
    rng = random.Random(seed)
    limit = rng.choice([2048, 8192, LIMIT])
    projects = ["P1", "P2", "P3"]
    log = Log([event(n, rng.choice(projects), rng.randrange(10, 900)) for n in range(1, 60)])
    since = rng.randrange(0, 40)
    topics: dict[str, frozenset[str] | None] = {"project:P1": None, "project:P2": None}
    replay, _ = replay_of(since, topics, limit=limit)
    sent: list[int] = []
    commits = 60  # then publishing stops, so the replay catches up
    while True:
        for _ in range(rng.choice([0, 0, 0, 1, 3]) if commits > 0 else 0):
            # a commit: in the log, then handed by the hub
            commits -= 1
            new = event(len(log.events) + 1, rng.choice(projects), rng.randrange(10, 900))
            log.events.append(new)
            if TopicFilter(dict(topics)).matches(new):
                replay.hold(Frames(new))
        action = replay.next(rng.choice([0, 0, 100, limit // 3, BACKED_UP]), False)
        if isinstance(action, Send):
            sent.append(action.frames.event.seq)
        elif isinstance(action, Read):
            replay.page(log.read(action.after, action.size, topics))
        elif isinstance(action, Done):
            sent.extend(f.event.seq for f in action.flush)
            break
    wanted = TopicFilter(dict(topics))
    expected = [e.seq for e in log.events if e.seq > since and wanted.matches(e)]
    assert sent == expected, (seed, sent, expected)
