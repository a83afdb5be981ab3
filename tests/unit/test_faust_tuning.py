"""Which partitions the seek after recovery rewinds (streams/faust_tuning.py, faust-streaming#596)."""

from __future__ import annotations

from aiokafka import TopicPartition

from streams.faust_tuning import uncommitted_inputs


def test_only_input_partitions_without_a_commit_are_rewound():
    acked_topics = {"dozor.raw.vk", "dozor.events"}
    committed = {
        TopicPartition("dozor.raw.vk", 0): None,      # never committed: rewind
        TopicPartition("dozor.raw.vk", 1): 17,        # committed: Faust's seek goes there
        TopicPartition("dozor.events", 2): -1,        # "no offset" as some brokers answer it
        TopicPartition("dozor-pages-changelog", 0): None,  # not acked: recovery positions it
        TopicPartition("dozor.events", 3): 0,         # aiokafka seeks only above 0: rewind
    }
    assert uncommitted_inputs(committed, acked_topics.__contains__) == [
        TopicPartition("dozor.events", 2), TopicPartition("dozor.events", 3),
        TopicPartition("dozor.raw.vk", 0),
    ]


def test_nothing_to_rewind_once_everything_is_committed():
    committed = {TopicPartition("dozor.raw.vk", p): 5 for p in range(4)}
    assert uncommitted_inputs(committed, lambda topic: True) == []
