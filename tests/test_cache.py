"""The result cache: memory LRU in front of SQLite."""

import hashlib
import json
import subprocess
import sys

import dspy
import numpy as np

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


_VALUES_SCRIPT = """
import json, sys
import dspy, numpy as np
from dspex_lab.cache import cache_key
values = {
    "history": dspy.History(messages=[{"question": "a", "answer": "b"}]),
    "history2": dspy.History(messages=[{"question": "a", "answer": "c"}]),
    "image": dspy.Image(url="data:image/png;base64,AAAA"),
    "image2": dspy.Image(url="data:image/png;base64,BBBB"),
    "array": np.arange(3), "array2": np.arange(1, 4),
    "int_keys": {1: "a"}, "str_keys": {"1": "a"},
    "tuple": (1, 2), "list": [1, 2],
    "plain": "hi",
}
print(json.dumps({k: cache_key("p", {"x": v}, "lm") for k, v in values.items()}))
"""


def _keys_in_a_new_process() -> dict[str, str]:
    out = subprocess.run([sys.executable, "-c", _VALUES_SCRIPT], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def test_keys_of_values_json_cannot_hold_are_by_content_across_processes():
    first, second = _keys_in_a_new_process(), _keys_in_a_new_process()
    assert first == second  # equal objects built in two processes: equal keys
    here = cache_key("p", {"x": dspy.History(messages=[{"question": "a", "answer": "b"}])},
                     "lm")
    assert here == first["history"]
    assert cache_key("p", {"x": np.arange(3)}, "lm") == first["array"]
    assert len(set(first.values())) == len(first)  # different values: different keys
    # plain rows keep the key they always had (JSON of the call)
    body = json.dumps(["p", {"x": "hi"}, "lm", {}], sort_keys=True)
    assert first["plain"] == hashlib.sha256(body.encode()).hexdigest()
