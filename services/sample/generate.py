"""Deterministic generator of the demo sample (``make demo``).

    python -m services.sample.generate

rewrites ``pages.yaml`` and ``vk_events.jsonl`` next to this file, byte-identically on every
run (fixed seed). Everything is fictional: the district «Вербовский муниципальный округ», its
settlements, pages, people and ids. Every text is written by hand in ``texts.yaml``; the page
table and the shape of the day are below.

The events are VK Callback API payloads (API v5.199, built by ``vk_payloads``), one per line,
in delivery order, over one working day (Wednesday 2026-11-25, Europe/Moscow). As on VK, posts
and comments of one wall share one id sequence.

Deliberate defects (see README.md): two duplicate deliveries (same ``event_id`` twice) and two
malformed lines at fixed line numbers (MALFORMED_JSON_LINE, MISSING_FIELDS_LINE).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from services.sample import vk_payloads as vk

HERE = Path(__file__).resolve().parent
TEXTS_FILE = HERE / "texts.yaml"
SEED = 20261125
MSK = timezone(timedelta(hours=3))
DAY = datetime(2026, 11, 25, tzinfo=MSK)  # a Wednesday

# Fixed 1-based line numbers of the deliberately malformed lines in vk_events.jsonl.
MALFORMED_JSON_LINE = 137
MISSING_FIELDS_LINE = 402
# How many events are delivered twice (same event_id, same bytes).
DUPLICATES = 2

# ---------------------------------------------------------------------------------------
# Pages: (owner id, name, municipality, category, deadline hours, deadline mode, tier, topic)
# tier: flagship / active / card (визитка) / dead (never posts)
# ---------------------------------------------------------------------------------------
MO = "Вербовский МО"
OLSH = "Ольшанское СП"
KRAS = "Красноборское СП"

PAGES = [
    (-2100001, "Администрация Вербовского муниципального округа", MO, "администрация", 8, "working", "flagship", "admin"),
    (-2100002, "Глава Вербовского муниципального округа", MO, "администрация", 8, "working", "flagship", "admin"),
    (-2100003, "МКУ «Управление ЖКХ Вербовского округа»", MO, "ЖКХ", 4, "working", "flagship", "zhkh"),
    (-2100004, "УК «Вербовский коммунальный сервис»", MO, "ЖКХ", 8, "working", "active", "zhkh"),
    (-2100005, "МБОУ «Вербовская СОШ № 1»", MO, "школа", 8, "working", "active", "school"),
    (-2100006, "МБОУ «Вербовская СОШ № 2»", MO, "школа", 8, "working", "active", "school"),
    (-2100007, "МБДОУ «Детский сад № 3 „Солнышко“»", MO, "детский сад", 8, "working", "active", "kindergarten"),
    (-2100008, "МБДОУ «Детский сад № 5 „Берёзка“»", MO, "детский сад", 8, "working", "card", "kindergarten"),
    (-2100009, "ГБУЗ «Вербовская центральная районная больница»", MO, "поликлиника", 4, "working", "flagship", "clinic"),
    (-2100010, "Детская поликлиника Вербовской ЦРБ", MO, "поликлиника", 8, "working", "active", "clinic"),
    (-2100011, "МБУК «Вербовский районный дом культуры»", MO, "дом культуры", 24, "plain", "active", "culture"),
    (-2100012, "Вербовская центральная библиотека", MO, "библиотека", 24, "plain", "card", "culture"),
    (-2100013, "МУП «Вербовское автотранспортное предприятие»", MO, "транспорт", 8, "working", "flagship", "transport"),
    (-2100014, "Управление образования Вербовского округа", MO, "образование", 8, "working", "active", "school"),
    (-2100015, "Молодёжный центр «Вертикаль»", MO, "молодёжная политика", 24, "plain", "card", "culture"),
    (-2100016, "Физкультурно-оздоровительный комплекс «Олимп»", MO, "спорт", 24, "plain", "active", "culture"),
    (-2100017, "Администрация Ольшанского сельского поселения", OLSH, "администрация", 8, "working", "flagship", "admin"),
    (-2100018, "МБОУ «Ольшанская СОШ»", OLSH, "школа", 8, "working", "active", "school"),
    (-2100019, "Детский сад «Колосок» с. Ольшанка", OLSH, "детский сад", 8, "working", "card", "kindergarten"),
    (-2100020, "Ольшанская врачебная амбулатория", OLSH, "поликлиника", 8, "working", "active", "clinic"),
    (-2100021, "Ольшанский сельский дом культуры", OLSH, "дом культуры", 24, "plain", "active", "culture"),
    (-2100022, "Ольшанская сельская библиотека", OLSH, "библиотека", 24, "plain", "dead", "culture"),
    (-2100023, "Ольшанский участок «Вербовсккоммунсервис»", OLSH, "ЖКХ", 8, "working", "active", "zhkh"),
    (-2100024, "Администрация Красноборского сельского поселения", KRAS, "администрация", 8, "working", "flagship", "admin"),
    (-2100025, "МБОУ «Красноборская ООШ»", KRAS, "школа", 8, "working", "card", "school"),
    (-2100026, "Красноборский фельдшерско-акушерский пункт", KRAS, "поликлиника", 8, "working", "dead", "clinic"),
    (-2100027, "Красноборский сельский клуб", KRAS, "дом культуры", 24, "plain", "active", "culture"),
    (-2100028, "Красноборская сельская библиотека", KRAS, "библиотека", 24, "plain", "card", "culture"),
    (-2100029, "Детский сад «Ромашка» с. Красный Бор", KRAS, "детский сад", 8, "working", "card", "kindergarten"),
    (-2100030, "ЕДДС Вербовского муниципального округа", MO, "безопасность", 4, "working", "active", "admin"),
]

# Pages that get a burst of complaints (owner id -> local hour the burst starts).
BURST_PAGES = {-2100003: 10, -2100013: 7}
# A dead page whose old post (published weeks ago) still gets comments nobody answers.
DEAD_PAGE_OLD_POST = (-2100026, 318)
# Share of citizens' questions the page answers, by tier.
ANSWER_RATE = {"flagship": 0.6, "active": 0.5, "card": 0.3, "dead": 0.0}
POSTS_PER_TIER = {"flagship": (3, 4), "active": (2, 3), "card": (1, 1), "dead": (0, 0)}
COMMENTS_PER_POST = {"flagship": (4, 11), "active": (2, 6), "card": (0, 3), "dead": (0, 0)}


def load_texts(path: Path = TEXTS_FILE) -> dict:
    """The hand-written texts: {section: list of texts, or {topic: list of texts}}."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------
# Model of the day
# ---------------------------------------------------------------------------------------
@dataclass
class Item:
    """A post or comment on one wall; ids are assigned later in time order."""

    owner: int
    kind: str  # post / comment
    ts: int
    text: str
    author: int
    post: "Item | None" = None  # for comments: the post
    parent: "Item | None" = None  # for replies: the comment replied to
    fixed_id: int | None = None
    id: int = 0
    created_by: int | None = None


@dataclass
class Ev:
    ts: int
    order: int
    type: str
    item: Item
    text: str | None = None  # for edits
    deleted_by: int = 0
    extra: dict = field(default_factory=dict)


def ts_at(hour: float) -> int:
    return int((DAY + timedelta(hours=hour)).timestamp())


def main() -> None:
    texts = load_texts()
    rng = random.Random(SEED)
    citizens = sorted(rng.sample(range(100_000_000, 800_000_000), 220))
    admins = {p[0]: rng.randrange(10_000_000, 90_000_000) for p in PAGES}

    def fill(text: str) -> str:
        loc, gen = rng.choice(texts["villages"])
        return text.format(street=rng.choice(texts["streets"]), village=loc, village_gen=gen,
                           house=rng.randint(1, 48))

    items: list[Item] = []
    events: list[Ev] = []
    counter = [0]

    def emit(ts: int, type_: str, item: Item, **kw) -> Ev:
        counter[0] += 1
        ev = Ev(ts, counter[0], type_, item, **kw)
        events.append(ev)
        return ev

    def comment(owner, ts, text, author, post, parent=None) -> Item:
        c = Item(owner, "comment", ts, text, author, post=post, parent=parent)
        items.append(c)
        emit(ts, "wall_reply_new", c)
        return c

    questions = answers = 0

    def discussion(page, post: Item, n: int, start: int, end: int, burst: bool = False) -> None:
        """n citizens' comments under post between start and end, answers and reactions."""
        nonlocal questions, answers
        owner, _, _, _, _, _, tier, topic = page
        times = sorted(rng.randint(start, end) for _ in range(n))
        for t in times:
            author = rng.choice(citizens)
            roll = rng.random()
            if burst:
                kind = "complaint" if roll < 0.8 else ("toxic" if roll < 0.9 else "question")
            elif roll < 0.38:
                kind = "question"
            elif roll < 0.55:
                kind = "complaint"
            elif roll < 0.70:
                kind = "thanks"
            elif roll < 0.94:
                kind = "neutral"
            else:
                kind = "toxic"
            pool = {"question": texts["questions"][topic],
                    "complaint": texts["complaints"][topic],
                    "thanks": texts["thanks_common"] + texts["thanks"][topic],
                    "neutral": texts["neutral_common"] + texts["neutral"][topic],
                    "toxic": texts["toxic"]}[kind]
            c = comment(owner, t, fill(rng.choice(pool)), author, post)
            if kind == "question":
                questions += 1
                delay = rng.randint(6 * 60, 3 * 3600)
                if rng.random() < ANSWER_RATE[tier] and t + delay <= ts_at(19.5):
                    answers += 1
                    a = comment(owner, t + delay, rng.choice(texts["answers"][topic]), owner, post,
                                parent=c)
                    a.created_by = admins[owner]
                    if rng.random() < 0.35:
                        comment(owner, a.ts + rng.randint(120, 3600), rng.choice(texts["follow_ups"]),
                                author, post, parent=a)
                elif rng.random() < 0.15:
                    # the asker gives up and deletes the question
                    emit(t + rng.randint(1800, 4 * 3600), "wall_reply_delete", c, deleted_by=author)
            elif kind == "toxic":
                r = rng.random()
                if r < 0.4:
                    # the page's moderator removes it
                    emit(t + rng.randint(600, 3 * 3600), "wall_reply_delete", c,
                         deleted_by=admins[owner])
            elif kind == "complaint" and rng.random() < 0.12:
                emit(t + rng.randint(60, 900), "wall_reply_edit", c,
                     text=c.text + rng.choice(texts["edit_suffixes"]))
            # another citizen argues with the commenter now and then
            if kind in ("complaint", "neutral") and rng.random() < 0.15:
                other = rng.choice(citizens)
                text = (rng.choice(texts["toxic"]) if rng.random() < 0.25
                        else rng.choice(texts["neutral_common"] + texts["follow_ups"][3:]))
                comment(owner, t + rng.randint(60, 1800), fill(text), other, post, parent=c)

    for page in PAGES:
        owner, _, _, _, _, _, tier, topic = page
        lo, hi = POSTS_PER_TIER[tier]
        n_posts = rng.randint(lo, hi)
        hours = sorted(rng.uniform(8.0, 17.5) for _ in range(n_posts))
        for h in hours:
            post = Item(owner, "post", ts_at(h), fill(rng.choice(texts["posts"][topic])), owner,
                        created_by=admins[owner])
            items.append(post)
            emit(post.ts, "wall_post_new", post)
            clo, chi = COMMENTS_PER_POST[tier]
            discussion(page, post, rng.randint(clo, chi), post.ts + 120, min(post.ts + 6 * 3600, ts_at(22.5)))
        if owner in BURST_PAGES:
            # complaints pile up within an hour under the newest post before the burst
            start = ts_at(BURST_PAGES[owner])
            target = None
            for it in items:
                if it.owner == owner and it.kind == "post" and it.ts < start:
                    target = it
            if target is None:  # nothing posted yet today: yesterday's post
                target = Item(owner, "post", ts_at(-6), "", owner, fixed_id=rng.randint(900, 1200))
            discussion(page, target, 12, start, start + 3300, burst=True)

    # A dead page: citizens comment under an old post; nobody answers.
    owner, old_post = DEAD_PAGE_OLD_POST
    old = Item(owner, "post", ts_at(-24 * 20), "", owner, fixed_id=old_post)
    for t, text in zip((ts_at(9.2), ts_at(11.7), ts_at(14.4)), texts["unanswered_on_old_post"]):
        comment(owner, t, text, rng.choice(citizens), old)
        questions += 1

    # A restore: a citizen deletes a complaint by mistake and restores it.
    restorable = [e for e in events if e.type == "wall_reply_new" and e.item.author > 0
                  and e.item.parent is None][::37][:3]
    for e in restorable:
        emit(e.ts + 300, "wall_reply_delete", e.item, deleted_by=e.item.author)
        emit(e.ts + 420, "wall_reply_restore", e.item)

    # Assign ids per wall in time order (posts and comments share one sequence on VK).
    next_id: dict[int, int] = {}
    for p in PAGES:
        next_id[p[0]] = rng.randint(1200, 4800)
    for it in sorted(items, key=lambda i: (i.ts, i.owner)):
        if it.fixed_id is not None:
            it.id = it.fixed_id
        else:
            next_id[it.owner] += 1
            it.id = next_id[it.owner]
    # placeholder posts (old / yesterday) need ids too
    for ev in events:
        for it in (ev.item, ev.item.post):
            if it is not None and it.id == 0:
                it.id = it.fixed_id

    events.sort(key=lambda e: (e.ts, e.order))
    # Track thread counts and post comment counts as VK would report them at delivery.
    lines: list[str] = []
    for n, ev in enumerate(events):
        event_id = hashlib.sha1(f"dozor-sample:{SEED}:{n}".encode()).hexdigest()
        lines.append(vk.dumps(vk.envelope(ev.type, ev.item.owner, event_id, render(ev))))

    # Duplicate deliveries: VK retries an event it thinks was not acknowledged.
    dup_src = [i for i, line in enumerate(lines) if '"type":"wall_reply_new"' in line]
    for src in sorted(rng.sample(dup_src, DUPLICATES), reverse=True):
        lines.insert(src + 4, lines[src])  # the retry arrives a few events later

    # Malformed lines at fixed positions.
    broken = lines[MALFORMED_JSON_LINE - 1]
    lines.insert(MALFORMED_JSON_LINE - 1, broken[: len(broken) // 2])  # cut off mid-transfer
    missing = json.loads(lines[MISSING_FIELDS_LINE - 1])
    for line in lines[MISSING_FIELDS_LINE - 1:]:
        obj = json.loads(line) if line.startswith("{") and line.endswith("}") else None
        if obj and obj["type"] == "wall_reply_new":
            missing = obj
            break
    missing = json.loads(json.dumps(missing))
    missing["event_id"] = hashlib.sha1(f"dozor-sample:{SEED}:missing".encode()).hexdigest()
    missing["object"]["id"] += 100_000
    del missing["object"]["text"], missing["object"]["date"]
    lines.insert(MISSING_FIELDS_LINE - 1, vk.dumps(missing))

    (HERE / "vk_events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (HERE / "pages.yaml").write_text(pages_yaml(), encoding="utf-8")

    types: dict[str, int] = {}
    for ev in events:
        types[ev.type] = types.get(ev.type, 0) + 1
    n_toxic = sum(1 for ev in events if ev.type == "wall_reply_new" and ev.item.text in texts["toxic"])
    n_answers = sum(1 for ev in events if ev.type == "wall_reply_new" and ev.item.author < 0)
    print(f"lines={len(lines)} events={len(events)} pages={len(PAGES)} types={types}")
    print(f"questions={questions} answered={answers} page_answers={n_answers} toxic={n_toxic}")
    seen: dict[str, int] = {}
    for i, line in enumerate(lines, 1):
        if line in seen:
            print(f"duplicate: line {i} repeats line {seen[line]}")
        seen.setdefault(line, i)
    print(f"malformed: invalid JSON line {MALFORMED_JSON_LINE}, missing text/date line {MISSING_FIELDS_LINE}")


def render(ev: Ev) -> dict:
    it = ev.item
    if ev.type == "wall_post_new":
        return vk.post(it.owner, it.id, it.ts, it.text, created_by=it.created_by)
    if ev.type == "wall_reply_delete":
        return vk.comment_delete(it.owner, it.id, it.post.id, ev.deleted_by)
    text = ev.text if ev.text is not None else it.text
    if it.parent is None:
        return vk.comment(it.owner, it.id, it.post.id, it.author, it.ts, text)
    root = it.parent
    while root.parent is not None:
        root = root.parent
    return vk.comment(it.owner, it.id, it.post.id, it.author, it.ts, text,
                      reply_to_comment=it.parent.id, reply_to_user=it.parent.author,
                      thread_root=root.id)


def pages_yaml() -> str:
    out = ["# Demo page registry of the fictional «Вербовский муниципальный округ».",
           "# Generated by services/sample/generate.py — edit the generator, not this file.",
           "pages:"]
    for owner, name, mun, cat, hours, mode, tier, _ in PAGES:
        out += [
            f'  - page_id: "vk:{owner}"',
            "    platform: vk",
            f'    name: "{name}"',
            f'    municipality: "{mun}"',
            f'    category: "{cat}"',
            f"    answer_deadline_hours: {hours}",
            f"    deadline_mode: {mode}",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
