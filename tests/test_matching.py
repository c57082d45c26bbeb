"""``matching.MatchCache``: the same names as the predicate, the predicate run once per new name, bounded."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from skyline_analyzer.matching import MatchCache

names = st.lists(st.sets(st.text(alphabet="abc.", max_size=4), max_size=12), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(names, st.integers(1, 15))
def test_a_cache_selects_what_the_predicate_selects(calls: list[set[str]], limit: int) -> None:
    seen: list[str] = []

    def predicate(name: str) -> bool:
        seen.append(name)
        return "a" in name

    cache = MatchCache(predicate, limit)
    for current in calls:
        seen.clear()
        assert cache.select(sorted(current)) == {name for name in current if "a" in name}
        assert len(cache) <= limit
        assert len(seen) == len(set(seen))


def test_known_names_skip_the_predicate_and_absent_ones_are_forgotten() -> None:
    seen: list[str] = []
    cache = MatchCache(lambda name: seen.append(name) or name.startswith("x"), 100)
    assert cache.select(["x1", "y1", "x2"]) == {"x1", "x2"}
    assert sorted(seen) == ["x1", "x2", "y1"]
    seen.clear()
    assert cache.select({"x1", "y1", "y2"}) == {"x1"}
    assert seen == ["y2"]
    assert len(cache) == 3
    seen.clear()
    assert cache.select(["x2"]) == {"x2"}
    assert seen == ["x2"]


def test_beyond_the_limit_names_are_matched_every_call() -> None:
    seen: list[str] = []
    cache = MatchCache(lambda name: seen.append(name) or True, 2)
    current = [f"m{i}" for i in range(5)]
    assert cache.select(current) == set(current)
    seen.clear()
    assert cache.select(current) == set(current)
    assert len(seen) == 3 and len(cache) == 2
