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
