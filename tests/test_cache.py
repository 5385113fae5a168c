"""The result cache: memory LRU in front of SQLite."""

from dspex_lab.cache import ResultCache, cache_key


def test_key_is_stable_and_sensitive():
    a = cache_key("p", {"q": "hi", "n": 1}, "lm")
    assert a == cache_key("p", {"n": 1, "q": "hi"}, "lm")
    assert a != cache_key("p", {"q": "hi", "n": 2}, "lm")
    assert a != cache_key("p", {"q": "hi", "n": 1}, "other-lm")
    assert a != cache_key("p", {"q": "hi", "n": 1}, "lm", temperature=0.7)


def test_memory_lru_evicts_oldest():
    cache = ResultCache(None, max_items=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None
    assert (cache.get("a"), cache.get("c")) == (1, 3)


def test_disk_layer_survives_a_new_cache_object(tmp_path):
    path = tmp_path / "results.sqlite"
    first = ResultCache(path)
    first.put_many({"k1": {"answer": "Paris"}, "k2": {"answer": "Rome"}})
    second = ResultCache(path)
    assert second.get("k1") == {"answer": "Paris"}
    assert second.get_many(["k1", "k2", "k3"]) == {"k1": {"answer": "Paris"},
                                                  "k2": {"answer": "Rome"}}
    assert len(second) == 2
    second.clear()
    assert ResultCache(path).get("k1") is None


def test_bulk_writes_and_reads_can_bypass_the_memory_layer(tmp_path):
    disk = ResultCache(tmp_path / "results.sqlite")
    disk.put_many({"k1": 1, "k2": 2}, remember=False)
    assert len(disk._mem) == 0 and disk.get_many(["k1", "k2"], remember=False) == {"k1": 1,
                                                                                  "k2": 2}
    assert len(disk._mem) == 0
    assert disk.get("k1") == 1 and list(disk._mem) == ["k1"]  # a single read remembers
    memory_only = ResultCache(None)
    memory_only.put_many({"k": 3}, remember=False)  # nowhere else to keep it
    assert memory_only.get("k") == 3


def test_digest_is_the_key_in_bytes():
    from dspex_lab.cache import cache_digest

    assert cache_digest("p", {"q": "hi"}, "lm", t=1).hex() == cache_key("p", {"q": "hi"}, "lm",
                                                                       t=1)


def test_values_keep_their_types_on_disk_and_come_back_as_fresh_copies(tmp_path):
    import enum
    import threading

    import dspy
    import pydantic

    class Item(pydantic.BaseModel):
        name: str

    class Color(enum.Enum):
        RED = "red"

    value = {"outputs": {"items": [Item(name="a")], "color": Color.RED, "t": (1, "x"),
                         "history": dspy.History(messages=[{"q": "hi"}]), "d": {"k": [1]}}}
    path = tmp_path / "results.sqlite"
    memory = ResultCache(path)
    memory.put("k", value)
    for cache in (memory, ResultCache(path)):  # the memory layer, then the file
        got = cache.get("k")
        assert got == value and got is not value
        assert type(got["outputs"]["items"][0]) is Item and got["outputs"]["color"] is Color.RED
        assert type(got["outputs"]["t"]) is tuple
    memory.get("k")["outputs"]["items"].append("changed")
    assert memory.get("k") == value  # changing what a hit returned changes nothing cached
    memory.put("lock", threading.Lock())  # cannot be pickled: not cached, no error
    assert memory.get("lock") is None and ResultCache(path).get("lock") is None


def test_entries_written_as_json_by_older_versions_are_still_read(tmp_path):
    import sqlite3

    path = tmp_path / "results.sqlite"
    ResultCache(path).put("new", 1)
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO results VALUES (?, ?)", ("old", '{"answer": "Paris"}'))
    assert ResultCache(path).get_many(["old", "new"]) == {"old": {"answer": "Paris"}, "new": 1}
