"""The worker's pages table is where DOZOR_TABLE_STORE says, and a RocksDB page read finds the
page in the store of its own partition (Faust keeps one RocksDB per partition)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from faust.stores.memory import Store as MemoryStore
from faust.stores.rocksdb import Store as RocksDBStore
from prometheus_client import CollectorRegistry

from services.settings import Settings
from services.worker import lock_data_dir, stream_config
from streams.app import DozorStreams, in_event_context
from streams.metrics import DozorMetrics
from streams.pages import PageRegistry


def streams_with(tmp_path, store: str) -> DozorStreams:
    settings = Settings(table_store=store, data_dir=tmp_path, _env_file=None)
    config = stream_config(settings, "127.0.0.1:1")
    return DozorStreams(config, classifier=None, pages=PageRegistry([]),
                        metrics=DozorMetrics(CollectorRegistry()))


@pytest.mark.parametrize("store, kind", [("rocksdb", RocksDBStore), ("memory", MemoryStore)])
def test_the_pages_table_is_in_the_configured_store(tmp_path, store, kind):
    streams = streams_with(tmp_path, store)
    assert type(streams.page_table.data) is kind
    assert type(streams.clock_table.data) is MemoryStore  # one value per partition


class Event:
    """What Faust's store reads of the current event: its message's partition."""

    def __init__(self, partition: int) -> None:
        self.message = SimpleNamespace(partition=partition)


def event_of(partition: int) -> Event:
    return Event(partition)


def test_a_page_read_looks_in_the_store_of_the_partition_of_its_message(tmp_path):
    streams = streams_with(tmp_path, "rocksdb")
    store = streams.page_table.data
    assert store.partition_path(2).parent == tmp_path / "v1" / "tables"
    table_key = store._encode_key("vk:-1")
    store._db_for_partition(2)[table_key] = b'{"partition": 2}'
    store._db_for_partition(0)[store._encode_key("vk:-3")] = b'{"partition": 0}'
    other = event_of(0)
    in_event_context(other)  # the batch's last message: another partition
    assert streams._read_page("vk:-1", event_of(2)) == b'{"partition": 2}'
    assert streams._read_page("vk:-3", event_of(0)) == b'{"partition": 0}'
    assert streams._read_page("vk:-3", event_of(2)) is None


def test_the_worker_starts_from_the_changelog_not_from_rocksdb_files_of_an_earlier_run(tmp_path):
    """After a crash the local files may hold writes the changelog never got: they go."""
    streams = streams_with(tmp_path, "rocksdb")
    tables = tmp_path / "v1" / "tables"
    for partition in (0, 3):
        (tables / f"pages-{partition}.db").mkdir(parents=True)
        (tables / f"pages-{partition}.db" / "000004.log").write_bytes(b"x")
    (tables / "other-0.db").mkdir()
    assert streams.discard_local_tables() == [tables / "pages-0.db", tables / "pages-3.db"]
    assert sorted(p.name for p in tables.iterdir() if p.suffix == ".db") == ["other-0.db"]
    assert streams_with(tmp_path, "memory").discard_local_tables() == []


def test_two_workers_cannot_share_a_data_dir(tmp_path):
    """The second worker on one DOZOR_DATA_DIR stops with what to do, before it could delete
    the first one's table files; once the first is gone, the directory is free again."""
    first = lock_data_dir(tmp_path / "state")
    with pytest.raises(SystemExit, match="another worker uses DOZOR_DATA_DIR=.*its own"):
        lock_data_dir(tmp_path / "state")
    lock_data_dir(tmp_path / "other").close()
    first.close()
    lock_data_dir(tmp_path / "state").close()
