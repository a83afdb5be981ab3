"""Build events.jsonl and labels.json of the two-day scenario from the table below.

Run `python tests/scenarios/two_days/make_events.py` after editing the table; expected.json
and README.md are written by hand (they are the expectation, not derived from the code).
Times are Moscow time (UTC+3, no DST); VK sends unix seconds. The payloads come from the
shared builder (services/sample/vk_payloads.py).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from services.sample import vk_payloads as vk

HERE = Path(__file__).resolve().parent
MSK = ZoneInfo("Europe/Moscow")
# events.jsonl was written before the shared builder and keeps its own key order; re-sorting
# the builder's objects into it keeps the file byte-identical.
KEY_ORDER = {
    "envelope": ("type", "object", "group_id", "event_id", "v"),
    "post": ("id", "owner_id", "from_id", "date", "marked_as_ads", "post_type", "inner_type",
             "text", "can_edit", "can_delete", "comments", "likes", "reposts", "views"),
    "likes": ("can_like", "count", "user_likes", "can_publish"),
    "comment": ("id", "from_id", "date", "text", "post_id", "owner_id", "parents_stack"),
}

ADMIN = -2000001  # Администрация Заречного района
SCHOOL = -2000002  # МБОУ «Заречная СОШ № 3»
HOSPITAL = -2000003  # ГБУЗ «Заречная ЦРБ»
UTILITIES = -2000004  # МКУ «ЖКХ Заречного района»

# (time, type, owner, item id, author, post id, text, parent comment id, reply-to user, labels)
# labels: q = question, n = negative, t = toxic; "" = none. Page posts and replies have "".
# For wall_reply_edit / wall_reply_restore the time is the comment's original date.
# For wall_reply_delete the author column is the user who deleted it.
EVENTS = [
    ("2026-03-03 08:30", "wall_post_new", SCHOOL, 301, SCHOOL, None,
     "Уважаемые родители! Весенние каникулы продлятся с 23 по 29 марта. Расписание работы "
     "кружков на каникулах опубликуем отдельно.", None, None, ""),
    ("2026-03-03 09:00", "wall_post_new", ADMIN, 501, ADMIN, None,
     "Уважаемые жители! Стартует приём заявок на благоустройство дворовых территорий по "
     "программе «Формирование комфортной городской среды». Заявки принимаются до 31 марта в "
     "МФЦ и в администрации района.", None, None, ""),
    ("2026-03-03 09:00", "wall_post_new", UTILITIES, 701, UTILITIES, None,
     "4 марта с 9:00 до 21:00 в связи с плановыми работами будет отключена горячая вода по "
     "улицам Мира, Садовая и Заводская. Приносим извинения за временные неудобства.",
     None, None, ""),
    ("2026-03-03 09:15", "wall_post_new", HOSPITAL, 401, HOSPITAL, None,
     "Продолжается вакцинация от гриппа. Прививку можно сделать в прививочном кабинете "
     "поликлиники (каб. 112) в будние дни с 8:00 до 15:00 без предварительной записи.",
     None, None, ""),
    ("2026-03-03 09:40", "wall_reply_new", ADMIN, 1001, 610001, 501,
     "Когда отремонтируют дорогу на улице Садовой? Ямы уже по колено, машины ломаем!",
     None, None, "qn"),
    ("2026-03-03 10:00", "wall_reply_new", HOSPITAL, 3001, 630001, 401,
     "Сколько можно ждать записи к неврологу? Через Госуслуги талонов нет уже месяц!",
     None, None, "qn"),
    ("2026-03-03 10:05", "wall_reply_new", UTILITIES, 7001, 640001, 701,
     "Спасибо, что предупредили заранее.", None, None, ""),
    ("2026-03-03 10:15", "wall_reply_new", ADMIN, 1002, ADMIN, 501,
     "Здравствуйте! Ремонт улицы Садовой включён в план дорожных работ на май 2026 года. "
     "До конца марта подрядчик выполнит ямочный ремонт.", 1001, 610001, ""),
    ("2026-03-03 10:40", "wall_reply_new", HOSPITAL, 3002, 630002, 401,
     "В регистратуру невозможно дозвониться, трубку никто не берёт.", None, None, "n"),
    ("2026-03-03 11:00", "wall_reply_delete", HOSPITAL, 3001, 630001, 401, "", None, None, ""),
    ("2026-03-03 11:05", "wall_reply_new", ADMIN, 1003, 610002, 501,
     "Отличная программа! Наш двор на Заводской давно ждёт новую детскую площадку.",
     None, None, ""),
    ("2026-03-03 11:30", "wall_reply_delete", HOSPITAL, 3002, 555001, 401, "", None, None, ""),
    ("2026-03-03 10:40", "wall_reply_restore", HOSPITAL, 3002, 630002, 401,
     "В регистратуру невозможно дозвониться, трубку никто не берёт.", None, None, "n"),
    ("2026-03-03 12:00", "wall_reply_new", SCHOOL, 2004, 620003, 301,
     "Ребёнок в пятницу оставил в спортзале синюю куртку.", None, None, ""),
    ("2026-03-03 12:00", "wall_reply_edit", SCHOOL, 2004, 620003, 301,
     "Ребёнок в пятницу оставил в спортзале синюю куртку. Не находили?", None, None, "q"),
    ("2026-03-03 13:00", "wall_reply_new", SCHOOL, 2005, SCHOOL, 301,
     "Здравствуйте! Куртка у вахтёра на первом этаже, забрать можно в будние дни с 8:00 "
     "до 17:00.", 2004, 620003, ""),
    ("2026-03-03 14:20", "wall_reply_new", ADMIN, 1004, 610003, 501,
     "Подскажите куда обращаться по поводу отопления", None, None, "q"),
    ("2026-03-03 14:50", "wall_reply_new", ADMIN, 1005, 610004, 501,
     "Звоните в управляющую компанию, отопление на них.", 1004, 610003, ""),
    ("2026-03-03 16:30", "wall_reply_new", SCHOOL, 2001, 620001, 301,
     "Будет ли работать группа продлённого дня на весенних каникулах? Мы с мужем оба "
     "работаем до шести.", None, None, "q"),
    ("2026-03-03 17:00", "wall_reply_new", SCHOOL, 2003, 620002, 301,
     "Огромное спасибо учителям за концерт к 23 февраля, дети в восторге!", None, None, ""),
    ("2026-03-04 08:05", "wall_post_new", UTILITIES, 702, UTILITIES, None,
     "Внимание! На теплотрассе по ул. Мира произошёл порыв. Аварийная бригада работает на "
     "месте, ориентировочное время восстановления отопления — 14:00.", None, None, ""),
    ("2026-03-04 08:10", "wall_reply_new", UTILITIES, 7002, 640002, 702,
     "Опять батареи ледяные, третий раз за зиму. Безобразие!", None, None, "n"),
    ("2026-03-04 08:18", "wall_reply_new", UTILITIES, 7003, 640003, 702,
     "Дома +14, ребёнок болеет. Сколько можно это терпеть.", None, None, "n"),
    ("2026-03-04 08:20", "wall_reply_new", UTILITIES, 7004, 640004, 702,
     "У нас на Заводской пока тепло, держитесь, соседи.", None, None, ""),
    ("2026-03-04 08:25", "wall_reply_new", UTILITIES, 7005, 640005, 702,
     "Каждый год одно и то же: трубы не меняют, только латают.", None, None, "n"),
    ("2026-03-04 08:31", "wall_reply_new", UTILITIES, 7006, 640006, 702,
     "Позор управляющей компании и администрации!", None, None, "n"),
    ("2026-03-04 08:40", "wall_reply_new", UTILITIES, 7007, 640007, 702,
     "Когда дадут отопление в дом 12 по улице Мира? Дети мёрзнут!", None, None, "qn"),
    ("2026-03-04 08:52", "wall_reply_new", UTILITIES, 7008, 640008, 702,
     "Звонили в аварийную службу — никто не берёт трубку. Отвратительная работа.",
     None, None, "n"),
    ("2026-03-04 08:58", "wall_reply_new", UTILITIES, 7009, 640009, 702,
     "Холодно в квартире, пишем жалобу в прокуратуру.", None, None, "n"),
    ("2026-03-04 09:20", "wall_reply_new", UTILITIES, 7010, UTILITIES, 702,
     "Здравствуйте! Бригада устраняет порыв, подача тепла в дом 12 по ул. Мира будет "
     "восстановлена ориентировочно к 14:00.", 7007, 640007, ""),
    ("2026-03-04 09:30", "wall_reply_new", HOSPITAL, 3004, 630003, 401,
     "Подскажите, прививку от гриппа ставят бесплатно по полису?", None, None, "q"),
    ("2026-03-04 09:45", "wall_reply_new", HOSPITAL, 3006, 630003, 401,
     "Работаю до пяти, хотелось бы успеть после работы.", None, None, ""),
    ("2026-03-04 10:00", "wall_post_new", ADMIN, 502, ADMIN, None,
     "График приёма граждан главой района в марте: вторник и четверг с 14:00 до 17:00, "
     "запись по телефону 8 (800) 000-00-01.", None, None, ""),
    ("2026-03-04 10:05", "wall_reply_new", HOSPITAL, 3007, HOSPITAL, 401,
     "Здравствуйте! Да, вакцинация бесплатная по полису ОМС, при себе нужен паспорт. "
     "По четвергам кабинет работает до 18:00.", 3006, 630003, ""),
    ("2026-03-04 10:30", "wall_reply_new", ADMIN, 1006, 610005, 502,
     "Спасибо, записалась на четверг.", None, None, ""),
    ("2026-03-04 12:00", "wall_post_new", SCHOOL, 302, SCHOOL, None,
     "Поздравляем команду школы с победой в районных соревнованиях по волейболу!",
     None, None, ""),
    ("2026-03-04 12:30", "wall_reply_new", SCHOOL, 2006, 620004, 302,
     "Молодцы ребята! Так держать!", None, None, ""),
    ("2026-03-04 14:10", "wall_reply_new", UTILITIES, 7011, 640010, 702,
     "Отопление дали, спасибо аварийной бригаде.", None, None, ""),
    ("2026-03-04 15:40", "wall_reply_new", ADMIN, 1007, 610006, 502,
     "Благодарю администрацию за расчищенные тротуары на Центральной улице.", None, None, ""),
    ("2026-03-04 16:10", "wall_reply_new", SCHOOL, 2002, SCHOOL, 301,
     "Добрый день! Группа продлённого дня на каникулах работать не будет, но с 23 по 27 "
     "марта с 9:00 до 15:00 открыт пришкольный лагерь. Заявления принимают классные "
     "руководители.", 2001, 620001, ""),
    ("2026-03-04 17:30", "wall_reply_new", UTILITIES, 7012, 640011, 702,
     "Когда уберут снег во дворе дома 8 по улице Садовой? Не пройти.", None, None, "q"),
]


def unix(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=MSK).timestamp())


def vk_event_id(*parts: object) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:40]


def in_key_order(obj: dict, keys: tuple[str, ...]) -> dict:
    """`obj` with `keys` first, in that order, then its other keys as they were."""
    return {**{k: obj[k] for k in keys if k in obj}, **obj}


def build() -> tuple[list[dict], dict[str, dict[str, bool]]]:
    payloads = []
    labels: dict[str, dict[str, bool]] = {}
    for at, kind, owner, item, author, post_id, text, parent, reply_to_user, marks in EVENTS:
        date = unix(at)
        if kind == "wall_post_new":
            obj = vk.post(owner, item, date, text, is_favorite=None)
            obj = in_key_order({**obj, "likes": in_key_order(obj["likes"], KEY_ORDER["likes"])},
                               KEY_ORDER["post"])
        elif kind == "wall_reply_delete":
            obj = vk.comment_delete(owner, item, post_id, author)
        else:
            obj = in_key_order(vk.comment(owner, item, post_id, author, date, text,
                                          reply_to_comment=parent, reply_to_user=reply_to_user),
                               KEY_ORDER["comment"])
        event_id = vk_event_id(kind, owner, item, date, text)
        payloads.append(in_key_order(vk.envelope(kind, owner, event_id, obj), KEY_ORDER["envelope"]))
        if text:
            labels[text] = {
                "question": "q" in marks, "negative": "n" in marks, "toxic": "t" in marks
            }
    return payloads, labels


def main() -> None:
    payloads, labels = build()
    with (HERE / "events.jsonl").open("w", encoding="utf-8") as fh:
        for payload in payloads:
            fh.write(json.dumps(payload, ensure_ascii=False) + "\n")
    (HERE / "labels.json").write_text(
        json.dumps(labels, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
