"""Employee facts, contact records and day summaries travel in bundles, one record per
partition per batch."""

from __future__ import annotations

import orjson

from projections.departments import summary_fact
from projections.tickets import _fact, contact_fact, fact_bundle, read_facts
from streams.worker.facts import FactBundles, keyed_items
from streams.worker.tables import partition_of


def test_a_bundle_reads_back_as_its_facts_in_order() -> None:
    facts = [("e-1", _fact("t-1", 3, [["2026-11-02", ["12.5", 1], 1]])),
             ('e|"odd"\\', _fact("t-2", 1, [["2026-11-02", None, 0]])),
             ("e-1", _fact("t-1", 4, [["2026-11-02", ["13", 1], 1]]))]
    got = read_facts(fact_bundle(facts))
    assert got == [(emp, orjson.loads(f), "t") for emp, f in facts]


def test_a_bundle_of_covers_or_repeats_names_its_kind() -> None:
    facts = [("e-1", _fact("d-1", 2, [["2026-11-02", ["0", 0], 0]]))]
    assert read_facts(fact_bundle(facts, "d")) == [("e-1", orjson.loads(facts[0][1]), "d")]


def test_bundles_group_facts_by_their_employees_partition() -> None:
    bundles = FactBundles(partitions=4)
    for i in range(200):
        full = bundles.add(f"e-{i % 37}", _fact(f"t-{i}", 1, [["2026-11-02", ["1"], 1]]))
        assert full is None  # far below the size limit
    sent = bundles.drain()
    assert bundles.drain() == []  # drained once
    assert [p for p, _ in sent] == sorted({partition_of(f"e-{i}", 4) for i in range(37)})
    tickets: list[int] = []
    for p, value in sent:
        numbers = []
        for emp, fact, _ in read_facts(value):
            assert partition_of(emp, 4) == p
            numbers.append(int(fact["t"][2:]))
        assert numbers == sorted(numbers)  # in the order produced
        tickets += numbers
    assert sorted(tickets) == list(range(200))  # each fact once


def test_a_full_bundle_is_handed_out_before_the_end_of_the_batch() -> None:
    bundles = FactBundles(partitions=1, limit=1000)
    fact = _fact("t-1", 1, [["2026-11-02", ["1"], 1]])
    handed: list[tuple[int, bytes]] = []
    for i in range(100):
        full = bundles.add(f"e-{i}", fact)
        if full is not None:
            handed += full
    handed += bundles.drain()
    assert len(handed) > 1
    assert all(len(v) < 1000 + len(fact) + 20 for _, v in handed)
    emps = [emp for _, v in handed for emp, _, _ in read_facts(v)]
    assert emps == [f"e-{i}" for i in range(100)]  # nothing lost, order kept


def test_contacts_and_summaries_read_back_bundled_or_one_per_record() -> None:
    """A bundle of contact records (or day summaries) reads back as its (key, value) pairs
    in order; a record with a key, as every one was before bundles, as that one pair."""
    from decimal import Decimal

    contacts = [("c-1", contact_fact("t-1", 2, None)),
                ('c|"odd"', contact_fact("t-2", 1, {"at": "2026-11-02T09:00:00+00:00"})),
                ("c-1", contact_fact("t-3", 5, None))]
    bundles = FactBundles(partitions=1)
    for customer, fact in contacts:
        assert bundles.add(customer, fact) is None
    [(partition, value)] = bundles.drain()
    assert partition == 0
    assert keyed_items(None, value) == [(c, orjson.loads(f)) for c, f in contacts]
    summary = summary_fact("e-1", "2026-11-02", 7, Decimal("480"), False, True)
    assert keyed_items(b"d-1", summary) == [("d-1", summary)]
