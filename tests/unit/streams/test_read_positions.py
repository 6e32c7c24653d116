"""The fast path's read positions: which fetched chunk may be delivered, and from where.

A chunk-at-a-time drain loop loses records if it skips past an offset nobody processed
and a later commit covers it. These tests pin the rules (seeks set the next offset, only
a completed hand-off advances it, chunks fetched before a seek are dropped, a hole is
accepted only when it comes back unchanged) and then run a randomised partition log
with rebalances, delayed chunks and real holes, checking that nothing is skipped.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from streams.worker.fastpath import ReadPositions, Verdict

TP = ("input", 0)


def sought(offset: int) -> ReadPositions:
    p = ReadPositions()
    p.seek_started()
    p.sought(TP, offset)
    return p


def test_a_chunk_starting_at_the_next_offset_is_delivered() -> None:
    p = sought(41)
    assert p.judge(TP, 41, 60, p.fetch_started()) is Verdict.DELIVER
    p.delivered(TP, 60)
    assert p.next_offset(TP) == 61
    assert p.judge(TP, 61, 70, p.fetch_started()) is Verdict.DELIVER


def test_after_a_seek_to_the_committed_offset_a_later_chunk_seeks_back_to_it() -> None:
    # The failover loss: committed 41 (not processed yet), a chunk fetched earlier
    # starts at 43. The read position must stay 41 (Faust's read offset + 1 was 42,
    # which skipped record 41 for good once the next commit covered it).
    p = sought(41)
    assert p.judge(TP, 43, 50, p.fetch_started()) is Verdict.SEEK
    assert p.next_offset(TP) == 41


def test_a_chunk_at_the_offset_after_the_committed_one_is_not_delivered() -> None:
    p = sought(41)
    assert p.judge(TP, 42, 50, p.fetch_started()) is Verdict.SEEK


def test_a_chunk_fetched_before_the_seek_completed_is_dropped() -> None:
    p = sought(10)
    p.delivered(TP, 29)
    before = p.fetch_started()
    p.seek_started()
    during = p.fetch_started()
    p.sought(TP, 20)
    after = p.fetch_started()
    assert p.judge(TP, 30, 40, before) is Verdict.DROP
    assert p.judge(TP, 20, 40, during) is Verdict.DROP
    assert p.judge(TP, 20, 40, after) is Verdict.DELIVER


def test_a_seek_of_another_partition_does_not_drop_this_one() -> None:
    p = sought(10)
    fetched = p.fetch_started()
    p.seek_started()
    p.sought(("input", 1), 0)
    assert p.judge(TP, 10, 20, fetched) is Verdict.DELIVER


def test_records_delivered_already_are_skipped_or_trimmed_by_the_caller() -> None:
    p = sought(0)
    p.delivered(TP, 99)
    assert p.judge(TP, 50, 99, p.fetch_started()) is Verdict.SKIP
    # Overlapping: delivered, the caller drops offsets below next_offset.
    assert p.judge(TP, 90, 120, p.fetch_started()) is Verdict.DELIVER
    assert p.next_offset(TP) == 100


def test_a_hole_is_accepted_only_when_the_same_chunk_comes_again_after_seeking_back() -> None:
    p = sought(10)
    assert p.judge(TP, 15, 20, p.fetch_started()) is Verdict.SEEK
    p.seek_started()
    p.sought(TP, 10)
    # A different start after seeking back: not confirmed, seek again.
    assert p.judge(TP, 17, 20, p.fetch_started()) is Verdict.SEEK
    p.seek_started()
    p.sought(TP, 10)
    assert p.judge(TP, 17, 20, p.fetch_started()) is Verdict.DELIVER


def test_a_hole_seen_before_a_delivery_or_a_rebalance_is_not_remembered() -> None:
    p = sought(10)
    assert p.judge(TP, 15, 20, p.fetch_started()) is Verdict.SEEK
    p.delivered(TP, 14)  # offsets 10-14 came after all
    p.seek_started()
    p.sought(TP, 10)
    assert p.judge(TP, 15, 20, p.fetch_started()) is Verdict.SEEK
    p.forget([TP])
    p.seek_started()
    p.sought(TP, 10)
    # Old code kept (tp, offset) holes forever: the same position after a later
    # rebalance was then accepted without looking, skipping records.
    assert p.judge(TP, 15, 20, p.fetch_started()) is Verdict.SEEK


def test_a_revoked_partition_delivers_nothing_until_it_is_sought_again() -> None:
    p = sought(10)
    p.forget([TP])
    assert p.next_offset(TP) is None
    assert p.judge(TP, 10, 20, p.fetch_started()) is Verdict.DROP
    p.seek_started()
    p.sought(TP, 5)
    assert p.judge(TP, 5, 20, p.fetch_started()) is Verdict.DELIVER


@dataclass
class Chunk:
    offsets: list[int]
    fetched_at: int


class Partition:
    """A partition log with real holes, a fetcher that reads ahead and returns chunks
    late (across seeks and rebalances), a rebalance whose seek to the committed offset
    runs while fetches go on (as Faust's perform_seek does), and a drain loop following
    the verdicts as BatchingConsumer._drain_messages does."""

    def __init__(self, rng: random.Random, size: int) -> None:
        self.rng = rng
        self.log = [o for o in range(size) if rng.random() > 0.03]  # 3 % real holes
        self.position = 0  # the consumer's fetch position
        self.in_flight: list[Chunk] = []
        self.positions = ReadPositions()
        self.processed: list[int] = []  # offsets handed to the agent, in order
        self.committed = 0
        self.rebalance_phase = ""  # "" | "revoked" | "thread sought"

    def seek(self, offset: int) -> None:
        self.positions.seek_started()
        self.position = offset  # the consumer drops what it had buffered for the tp
        self.positions.sought(TP, offset)

    def fetch(self) -> None:
        offsets = [o for o in self.log if o >= self.position][: self.rng.randint(1, 40)]
        if offsets:
            self.in_flight.append(Chunk(offsets, self.positions.fetch_started()))
            self.position = offsets[-1] + 1

    def drain_one(self) -> None:
        # In fetch order: one drain loop iterates the fetches one after another. What
        # comes "late" is a chunk judged after a seek that ran while it was in flight.
        chunk = self.in_flight.pop(0)
        first, last = chunk.offsets[0], chunk.offsets[-1]
        verdict = self.positions.judge(TP, first, last, chunk.fetched_at)
        nxt = self.positions.next_offset(TP)
        if verdict is Verdict.DROP:
            self.positions.dropped(TP)
        elif verdict is Verdict.SEEK:
            assert nxt is not None
            self.seek(nxt)
        elif verdict is Verdict.DELIVER:
            assert nxt is not None
            delivered = [o for o in chunk.offsets if o >= nxt]
            # Nothing that exists in the log between the next offset and the chunk.
            missing = [o for o in self.log if nxt <= o < delivered[0]]
            assert not missing, f"skipped {missing}"
            self.processed.extend(delivered)
            self.positions.delivered(TP, last)
        if not self.positions.seeking:  # the drain loop, after each fetch
            self.seek_again()

    def seek_again(self) -> None:
        for tp in self.positions.take_dropped():
            nxt = self.positions.next_offset(tp)
            if nxt is not None:
                self.seek(nxt)

    def rebalance_step(self) -> None:
        """One step of a rebalance: revoke; the consumer thread seeks to the committed
        offset; perform_seek records it (and seeks again what it dropped meanwhile)."""
        if not self.rebalance_phase:
            # Everything handed over before the revoke was processed; the commit covers
            # some prefix of it, never more.
            self.positions.forget([TP])
            done = sorted(set(self.processed))
            self.committed = self.rng.choice([self.committed, *(o + 1 for o in done[-5:])])
            self.positions.seek_started()
            self.positions.seeking += 1
            self.rebalance_phase = "revoked"
        elif self.rebalance_phase == "revoked":
            self.position = self.committed
            self.rebalance_phase = "thread sought"
        else:
            self.positions.sought(TP, self.committed)
            self.seek_again()
            self.positions.seeking -= 1
            self.rebalance_phase = ""


@pytest.mark.parametrize("seed", range(40))
def test_randomised_log_with_rebalances_and_late_chunks_loses_nothing(seed: int) -> None:
    rng = random.Random(seed)
    part = Partition(rng, size=rng.randint(50, 600))
    for _ in range(3000):
        r = rng.random()
        if r < 0.03 or (part.rebalance_phase and r < 0.25):
            part.rebalance_step()
        elif r < 0.5:
            part.fetch()
        elif part.in_flight:
            part.drain_one()
    # Then to the end, with no new records: a chunk dropped and never fetched again
    # would be missing for good.
    for _ in range(10_000):
        if part.in_flight:
            part.drain_one()
        elif part.rebalance_phase:
            part.rebalance_step()
        elif part.position <= part.log[-1]:
            part.fetch()
        else:
            break
    assert set(part.processed) == set(part.log)


def test_a_chunk_fetched_between_the_thread_seek_and_its_record_is_fetched_again() -> None:
    # The stall seen in the failover test: a partition taken over was fetched to its
    # end while perform_seek was still running, the chunk was dropped (no position
    # yet), and with no new records nothing ever showed the fetcher was past them.
    part = Partition(random.Random(0), size=100)
    part.log = list(range(100))
    part.processed = list(range(50))
    part.committed = 50
    part.positions.forget([TP])
    part.positions.seek_started()
    part.positions.seeking += 1
    part.rebalance_phase = "revoked"
    part.rebalance_step()  # the consumer thread seeks to 50
    part.fetch()
    while part.position <= 99:
        part.fetch()
    while part.in_flight:
        part.drain_one()  # dropped: perform_seek has not recorded the position yet
    assert part.processed == list(range(50))
    part.rebalance_step()  # perform_seek records 50 and seeks again what it dropped
    assert part.position == 50
    while part.position <= 99 or part.in_flight:
        part.fetch() if not part.in_flight else part.drain_one()
    assert sorted(set(part.processed)) == part.log


def test_a_hand_off_completing_after_a_revoke_gives_no_position_back() -> None:
    # A put already woken when the rebalance cleared the queue completes afterwards:
    # the chunk was not processed, and only the next assignment's seek gives a position.
    p = sought(10)
    p.forget([TP])
    p.delivered(TP, 60)
    assert p.next_offset(TP) is None
    assert p.judge(TP, 61, 80, p.fetch_started()) is Verdict.DROP
