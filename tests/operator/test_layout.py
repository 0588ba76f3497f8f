"""The log-structured checkpoint's bookkeeping: which piece holds each workload's latest line."""

from __future__ import annotations

from entitlement_sidecar.operator.layout import LOG_FLOOR, Layout, Piece
from entitlement_sidecar.operator.shards import PAYLOAD_BYTES


def piece(name: str, sizes: dict[str, int], gone: frozenset[str] = frozenset()) -> Piece:
    made = Piece(name)
    for key, size in sizes.items():
        made.add(key, size, gone=key in gone)
    return made


def based(*pieces: Piece) -> Layout:
    """A layout whose base is these pieces (as a resume or a first checkpoint leaves it)."""
    layout = Layout()
    layout.commit(list(pieces), [], pieces)
    return layout


FULL = PAYLOAD_BYTES // 2  # two workloads fill a piece


def test_a_logged_line_supersedes_the_base_line() -> None:
    """A workload written to the log has its latest line there; its base line is dead."""
    b1 = piece("b1", {"a": FULL, "b": FULL})
    layout = based(b1)
    l1 = piece("l1", {"a": 10})
    assert layout.commit([b1], [l1], [l1]) == []
    assert (layout.where["a"], layout.where["b"]) == (l1, b1)
    assert (b1.dead, b1.live, layout.log_bytes()) == (FULL, FULL, 10)


def test_replacing_the_open_piece_makes_it_garbage() -> None:
    """A checkpoint that rewrites the open log piece with more lines drops the old one."""
    layout = based(piece("b1", {"a": FULL, "b": FULL}))
    l1 = piece("l1", {"a": 10})
    layout.commit(layout.base, [l1], [l1])
    l2 = piece("l2", {"a": 11, "b": 12})
    assert layout.commit(layout.base, [l2], [l2]) == [l1]
    assert layout.log == [l2]
    assert layout.open_piece() is l2


def test_a_compaction_rewrites_the_shards_with_dead_or_changed_lines_and_small_ones() -> None:
    """Shards holding a superseded line, or less than half full, are rewritten, together with
    every logged workload, in key order; the other shards are kept as they are."""
    clean = piece("b1", {"a": FULL, "b": FULL})
    stale = piece("b2", {"c": FULL, "d": FULL})
    small = piece("b3", {"e": 10})
    layout = based(clean, stale, small)
    log = piece("l1", {"d": 10, "x": 20})
    layout.commit(layout.base, [log], [log])
    plan = layout.plan(touched={"y"})
    assert (plan.keys, plan.dirty) == (["c", "d", "e", "x", "y"], [stale, small])
    assert plan.folded == [log]


def test_a_compaction_keeps_the_log_written_while_it_ran() -> None:
    """Lines logged while a compaction ran override its new shards; the log it folded in and the
    shards it replaced become garbage; a workload gone since has no line left."""
    old = piece("b1", {"a": FULL, "b": FULL})
    layout = based(old)
    folded = piece("l1", {"a": 10, "gone": 5}, gone=frozenset({"gone"}))
    layout.commit(layout.base, [folded], [folded])
    compaction = layout.plan()
    meanwhile = piece("l2", {"b": 12})
    layout.commit(layout.base, [folded, meanwhile], [meanwhile])
    new = piece("b2", {"a": 10, "b": 11})
    compaction.new, compaction.gone, compaction.position = [new], ["gone"], 3
    assert layout.finish(compaction) == ([new], [meanwhile])
    assert sorted(p.name for p in layout.commit_compaction(compaction)) == ["b1", "l1"]
    assert (layout.where["a"], layout.where["b"], "gone" in layout.where) == (new, meanwhile, False)
    assert (new.dead, layout.workloads()) == (11, 2)


def test_the_log_budget_is_a_quarter_of_the_base() -> None:
    """A checkpoint compacts once the log would pass a quarter of the base (at least a floor),
    so a resume reads at most a quarter more than the base."""
    big = based(*(piece(f"b{i}", {f"k{i}a": FULL, f"k{i}b": FULL}) for i in range(40)))
    assert big.log_budget() == 40 * PAYLOAD_BYTES // 4
    assert based().log_budget() == LOG_FLOOR
    assert not big.should_compact(0)
    assert big.should_compact(big.log_budget() // big.line_guess() + 1)


def test_a_log_piece_written_while_a_compaction_ran_stays_whatever_its_address() -> None:
    """The open piece the compaction folded in is replaced while it runs and freed; a piece
    created after that may get the freed object's address, and must still count as written
    meanwhile: its lines are newer than the compaction's shards (found by a full-suite run, where
    the checkpoint in force lost a workload's newest line). Tried many times, so the interpreter
    gets every chance to reuse the address."""
    for attempt in range(200):
        layout = based(piece("b1", {"a": FULL, "b": FULL}))
        folded = piece("l1", {"a": 10})
        layout.commit(layout.base, [folded], [folded])
        compaction = layout.plan()
        replaced = piece("l2", {"a": 11})
        layout.commit(layout.base, [replaced], [replaced])  # the open piece rewritten
        del folded  # deleted on the API server; nothing else holds it
        newest = piece("l3", {"a": 12, "b": 13})
        layout.commit(layout.base, [newest], [newest])
        compaction.new, compaction.position = [piece("b2", {"a": 10, "b": FULL})], 2
        _, log = layout.finish(compaction)
        assert log == [newest], f"attempt {attempt}: the newest log piece was dropped"
        layout.commit_compaction(compaction)
        assert (layout.where["a"], layout.where["b"]) == (newest, newest)
