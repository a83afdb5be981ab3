"""The worker's inputs must be co-partitioned: the rule, without a broker."""

from __future__ import annotations

from streams.topics import TopicNames, partition_mismatch


def test_topics_with_one_partition_count_pass():
    names = TopicNames().inputs()
    assert partition_mismatch({n: 4 for n in names}, names) is None
    # a topic the broker did not describe is not checked (nothing to compare)
    assert partition_mismatch({names[0]: 4, names[1]: 4}, names) is None


def test_a_differing_count_names_each_topic_and_the_way_out():
    names = TopicNames().inputs()
    problem = partition_mismatch({"dozor.raw.vk": 1, "dozor.raw.telegram": 4,
                                  "dozor.clock": 4, "dozor.flags": 9}, names)
    assert problem is not None
    assert "dozor.raw.vk: 1" in problem and "dozor.clock: 4" in problem
    assert "dozor.flags" not in problem  # not an input
    assert "--partitions" in problem and "DOZOR_TOPIC_PARTITIONS" in problem


def test_the_inputs_are_the_raw_topics_and_the_clock():
    names = TopicNames(raw_vk="a", raw_telegram="b", clock="c", events="e")
    assert names.inputs() == ["a", "b", "c"]
    assert set(names.inputs()) <= set(names.all())
