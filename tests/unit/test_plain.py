"""streams/plain.py: the fast dataclass → dict must give what dataclasses.asdict gives."""

from __future__ import annotations

from dataclasses import asdict

from streams.events import CanonicalEvent
from streams.flags import Flag, FlagUpdate
from streams.plain import known_fields, to_plain_dict
from streams.tracking.questions import TrackedQuestion

EVENT = CanonicalEvent("e1", "vk", "comment", "new", "vk:-1", "10", "5", None, "77", "77",
                       False, "Когда?", 1.5e9, "https://vk.com/wall-1_5?reply=10")
FLAG = Flag("f1", "toxic", "vk:-1", "Школа", "МО", "vk", "10", "5", "77", "Текст", "link",
            1.5e9, 1.6e9, scores={"toxic": 0.9}, details={"why": ["a", {"b": 1}]})


def test_every_record_written_per_event_matches_asdict():
    question = TrackedQuestion("vk:-1", "vk", "10", "5", "77", "Когда?", "u", 1.0, 2.0)
    update = FlagUpdate("f1", "edited", "vk:-1", "10", 3.0, "u1", scores={"toxic": 0.1})
    for obj in (EVENT, FLAG, question, update):
        assert obj.to_dict() == asdict(obj)
        assert list(obj.to_dict()) == list(asdict(obj))  # field order kept (JSON records)


def test_nested_values_are_copies_not_shared():
    plain = to_plain_dict(FLAG)
    plain["scores"]["toxic"] = 0.0
    plain["details"]["why"][1]["b"] = 2
    assert FLAG.scores == {"toxic": 0.9} and FLAG.details == {"why": ["a", {"b": 1}]}


def test_unknown_fields_of_a_newer_record_are_ignored():
    data = {**EVENT.to_dict(), "added_later": 1}
    assert CanonicalEvent(**known_fields(CanonicalEvent, data)) == EVENT
    assert CanonicalEvent.from_dict(data) == EVENT
