"""Deterministic generator of the demo sample (``make demo``).

    python services/sample/generate.py

rewrites ``pages.yaml`` and ``vk_events.jsonl`` next to this file, byte-identically on every
run (fixed seed, stdlib only). Everything is fictional: the district «Вербовский
муниципальный округ», its settlements, pages, people and ids. All comment texts are written
by hand in the lists below, so the sample can be reviewed as code.

The events are VK Callback API payloads exactly as VK posts them (API v5.199), one per line,
in delivery order, over one working day (Wednesday 2026-11-25, Europe/Moscow). Fields follow
the official schema (shared/data/vk-api-schema): posts are ``wall_wallpost`` objects,
comments ``wall_wall_comment``, deletions ``callback_wall_comment_delete``. As on VK, posts and
comments of one wall share one id sequence.

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

HERE = Path(__file__).resolve().parent
SEED = 20261125
API_VERSION = "5.199"
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

# ---------------------------------------------------------------------------------------
# Hand-written texts. {street}, {village} («в …»), {village_gen} («до …»), {house} are
# filled from the lists below.
# ---------------------------------------------------------------------------------------
STREETS = ["Садовой", "Молодёжной", "Заводской", "Полевой", "Школьной", "Набережной",
           "Луговой", "Строителей", "Мира", "Октябрьской", "Лесной", "Центральной"]
# (prepositional «в …», genitive «до …») of the villages
VILLAGES = [("Заречье", "Заречья"), ("Малых Ключах", "Малых Ключей"), ("Луговом", "Лугового"),
            ("Сосновке", "Сосновки"), ("Ольшанке", "Ольшанки"), ("Красном Бору", "Красного Бора")]

POSTS = {
    "admin": [
        "Уважаемые жители! С 25 по 29 ноября проводится приём граждан по личным вопросам. Запись по телефону приёмной.",
        "На улице {street} завершён ремонт уличного освещения: установлено 14 новых светодиодных светильников.",
        "Внимание! В связи с ожидаемым снегопадом просим автовладельцев не оставлять машины на обочинах — будет работать техника.",
        "Состоялось заседание комиссии по благоустройству. Утверждён перечень дворов для ремонта в следующем году.",
        "Напоминаем: до 1 декабря принимаются заявки на участие в программе инициативного бюджетирования.",
        "Сегодня в {village} прошёл сход граждан. Обсудили ремонт дороги и подключение к водопроводу.",
        "Открыт приём предложений по названию нового сквера у районного дома культуры. Пишите варианты в комментариях!",
        "График вывоза твёрдых коммунальных отходов на декабрь опубликован на сайте администрации.",
    ],
    "zhkh": [
        "Плановое отключение холодной воды 25 ноября с 10:00 до 16:00 на улице {street} в связи с заменой задвижки.",
        "Бригады продолжают расчистку дворов от снега. Приоритет — подходы к школам, детским садам и поликлинике.",
        "Уважаемые жители! Показания приборов учёта принимаются до 25 числа через личный кабинет и по телефону диспетчерской.",
        "Завершена промывка системы отопления в домах по улице {street}. Если батареи холодные — сообщите в диспетчерскую.",
        "Аварийная ситуация на водоводе в районе улицы {street}. Ремонтные работы ведутся, ориентировочное время восстановления — 18:00.",
    ],
    "school": [
        "Поздравляем команду школы с победой в муниципальном этапе олимпиады по математике!",
        "Родительское собрание для 9-х классов пройдёт 27 ноября в 18:00 в актовом зале.",
        "В школе прошла акция «Покормите птиц зимой»: ребята сделали 40 кормушек.",
        "Напоминаем о графике работы школьной столовой и правилах оплаты питания.",
        "Итоги недели профориентации: ученики посетили предприятия округа.",
    ],
    "kindergarten": [
        "В группе «Звёздочки» прошло осеннее развлечение. Спасибо родителям за помощь с костюмами!",
        "Уважаемые родители! Напоминаем о необходимости сменной обуви и подписанной одежды.",
        "Объявлен набор в кружок «Весёлые нотки» для детей 4–6 лет.",
        "В детском саду проведена учебная эвакуация. Дети действовали чётко и спокойно.",
    ],
    "clinic": [
        "Продолжается вакцинация против гриппа. Прививочный кабинет работает с 8:00 до 15:00 без записи.",
        "Диспансеризация взрослого населения: пройти её можно в кабинете профилактики, каб. 112.",
        "Изменение графика приёма: терапевт участка № 3 принимает 25–29 ноября во второй половине дня.",
        "Выездная бригада врачей будет работать в {village} 28 ноября. Приём с 10:00 в здании администрации.",
        "Напоминаем: записаться к врачу можно через Госуслуги и по телефону регистратуры.",
    ],
    "culture": [
        "Приглашаем на концерт ко Дню матери! 29 ноября в 15:00, вход свободный.",
        "Открыта выставка детских рисунков «Родной край». Ждём всех с 10:00 до 18:00.",
        "Объявляем набор в вокальную студию и танцевальный коллектив. Занятия бесплатные.",
        "Клуб любителей книги собирается в четверг в 17:00. Обсуждаем повесть «Тихий Дон».",
        "Фотоотчёт с осеннего фестиваля народного творчества.",
        "Новое поступление книг: детективы, фантастика и литература для детей.",
    ],
    "transport": [
        "С 1 декабря изменяется расписание маршрута № 105 «Вербовск — Ольшанка». Подробности на остановках и на сайте.",
        "В связи с гололёдом возможны задержки автобусов на пригородных маршрутах. Просим отнестись с пониманием.",
        "На маршрут № 3 вышли два новых автобуса с низким полом.",
        "Напоминаем, что в автобусах принимается оплата банковской картой и транспортной картой.",
    ],
}

QUESTIONS = {
    "admin": [
        "Когда вывезут мусор на {street}? Уже неделю контейнеры переполнены",
        "подскажите, куда обращаться по поводу ямы на {street} у дома {house}",
        "Кто отвечает за освещение в {village}? Полгода темно на остановке",
        "Будут ли чистить дорогу в {village}, автобус не может проехать?",
        "Скажите пожалуйста когда начнут ремонт моста через речку в {village}",
        "А где можно посмотреть график приёма главы?",
        "Подскажите, как подать заявку на инициативное бюджетирование от нашего ТОС",
        "Интересует, будет ли в этом году ёлка на площади",
        "когда заасфальтируют {street}, обещали ещё летом",
        "Можно узнать, почему на {street} убрали остановку?",
        "Куда жаловаться на бродячих собак возле школы",
        "Подскажите телефон, куда звонить если упало дерево на провода",
        "Почему до сих пор не убрали упавшее дерево на {street}?",
    ],
    "zhkh": [
        "Когда дадут воду на {street}? Уже 18:30",
        "Подскажите, в доме {house} по {street} батареи еле тёплые, куда звонить?",
        "почему опять нет горячей воды в доме {house}",
        "Когда будут чистить крышу, сосульки висят над подъездом",
        "Скажите, перерасчёт за отключение воды будет?",
        "Подскажите номер диспетчерской, на сайте не могу найти",
        "Кто будет убирать снег во дворе дома {house} по {street}?",
        "А на {street} когда заменят трубы? Каждую зиму прорыв",
        "подскажите куда передать показания счётчиков, личный кабинет не работает",
    ],
    "school": [
        "Подскажите, во сколько завтра заканчиваются уроки у 5 классов?",
        "Будет ли продлёнка во втором полугодии?",
        "Когда выложат расписание на следующую неделю",
        "Подскажите, как оплатить питание, если нет карты?",
        "Скажите пожалуйста, олимпиада по биологии когда?",
        "Автобус до {village_gen} будет ходить в каникулы?",
        "Подскажите, форма на физкультуру нужна обязательно единая",
    ],
    "kindergarten": [
        "Подскажите, когда будет утренник в средней группе?",
        "Можно ли приводить ребёнка к 7:00, раньше открытия?",
        "Как встать в очередь в ясельную группу, куда обращаться",
        "Будет ли карантин, в группе половина детей болеет?",
        "Подскажите, сколько стоит кружок и как оплачивать",
    ],
    "clinic": [
        "Подскажите, как записаться к лору, на Госуслугах нет талонов",
        "Почему невозможно дозвониться в регистратуру? Звоню с утра",
        "Когда будет приём у эндокринолога?",
        "Скажите, вакцина от гриппа какая, отечественная?",
        "куда обращаться чтобы получить направление на МРТ",
        "Выездная бригада будет в {village} в декабре?",
        "Подскажите, справку в бассейн где делают",
        "Когда наконец откроют второй кабинет УЗИ",
    ],
    "culture": [
        "Подскажите, с какого возраста можно в танцевальный коллектив?",
        "Концерт платный или бесплатный?",
        "Во сколько начало, в 15 или в 16?",
        "Будет ли новогодняя ёлка для детей и как получить билет",
        "Подскажите часы работы в субботу",
        "Можно ли записаться в студию взрослым",
    ],
    "transport": [
        "Почему автобус № 105 в 7:10 опять не пришёл?",
        "Подскажите, новое расписание где посмотреть",
        "Когда вернут рейс в 21:00 до {village_gen}?",
        "Будет ли льготный проезд для студентов в пригородных",
        "Скажите, почему в автобусах не работает терминал, пришлось платить наличными",
        "Когда пустят автобус до нового микрорайона?",
    ],
}

COMPLAINTS = {
    "admin": [
        "Дорогу в {village} так и не почистили, скорая не проедет. Безобразие!",
        "На {street} третий день не горят фонари, дети ходят в школу в темноте.",
        "Обещали отремонтировать тротуар, а в итоге положили асфальт прямо в лужи.",
        "Мусор не вывозят уже неделю, контейнеры переполнены, вокруг всё разнесли собаки.",
        "Писали уже несколько раз про яму у дома {house}, никакой реакции.",
        "Опять всё для галочки. Отчитались красиво, а по факту ничего не изменилось.",
    ],
    "zhkh": [
        "Воды нет с утра, никто ничего не объявлял. Как людям жить?",
        "В квартире +16, платим за отопление полностью. Это издевательство.",
        "Диспетчерская не берёт трубку уже час!",
        "Во дворе дома {house} каток, пенсионеры падают, никто не посыпает.",
        "Трубу прорвало в подвале, вода стоит неделю, запах на весь подъезд.",
        "Опять отключили воду без предупреждения, ребёнка нечем помыть.",
        "Управляющая компания только деньги собирает, ничего не делает.",
        "На {street} из крана бежит ржавая вода, пить невозможно.",
    ],
    "school": [
        "В кабинетах холодно, дети сидят в куртках.",
        "Дети жалуются на еду в столовой, каша холодная и невкусная.",
        "Почему о собрании сообщают за день? Работающие родители не успевают отпроситься.",
    ],
    "kindergarten": [
        "В группе постоянно сквозняк, дети болеют.",
        "Опять собирают деньги на ремонт, сколько можно.",
    ],
    "clinic": [
        "Записаться к врачу невозможно, талонов нет на две недели вперёд.",
        "Сидели в очереди два часа, хотя были записаны на 9:30.",
        "Регистратура грубит пожилым людям, это недопустимо.",
        "Аптечный пункт закрыт уже третий день, за лекарствами ехать в город.",
    ],
    "culture": [
        "Зал маленький, половина людей стояла на концерте.",
        "В клубе холодно, зимой заниматься невозможно.",
    ],
    "transport": [
        "Автобус № 105 опять не пришёл, люди мёрзнут на остановке больше часа.",
        "Водитель проехал мимо остановки, хотя я махала рукой.",
        "Автобусы ходят переполненные, в 7 утра не влезть.",
        "Расписание поменяли, а на остановке висит старое. Полдня потеряла.",
        "В салоне холодно, печка не работает, ехали 40 минут как в холодильнике.",
    ],
}

THANKS_COMMON = [
    "Спасибо за оперативную работу!",
    "Благодарю, всё сделали быстро.",
    "Спасибо, очень полезная информация.",
    "Молодцы, так держать!",
    "Наконец-то! Спасибо, что услышали.",
]
THANKS = {
    "admin": ["Дорогу почистили, спасибо трактористу.", "Спасибо, фонари у нас теперь горят.",
              "Спасибо главе за встречу с жителями."],
    "zhkh": ["Спасибо, воду дали.", "Спасибо бригаде, быстро устранили аварию.",
             "Батареи стали горячие, спасибо."],
    "school": ["Огромное спасибо учителям за подготовку ребят!", "Поздравляем! Гордимся нашими детьми."],
    "kindergarten": ["Спасибо воспитателям за праздник, дети в восторге.",
                     "Спасибо нашему саду, ребёнок бежит туда с радостью."],
    "clinic": ["Спасибо врачам амбулатории за внимательное отношение.",
               "Спасибо, привились без очереди за 15 минут."],
    "culture": ["Спасибо за концерт, было очень душевно.", "Какие талантливые у нас дети!"],
    "transport": ["Новые автобусы тёплые и чистые, спасибо.", "Спасибо водителю маршрута № 3, подождал бабушку."],
}

NEUTRAL_COMMON = [
    "Информацию приняли.",
    "У нас в {village} тоже так.",
    "На сайте информация та же.",
    "Ждём.",
    "Понятно.",
    "Посмотрим, что из этого выйдет.",
    "В прошлом году было так же.",
]
NEUTRAL = {
    "admin": ["Интересно, кто придёт на сход.", "Вчера проезжал, там уже работает техника.",
              "Предлагаю назвать сквер «Берёзовая роща»."],
    "zhkh": ["Объявление видела на подъезде.", "У соседей тоже отключили."],
    "school": ["Сын рассказывал, ему понравилось.", "Будем на собрании."],
    "kindergarten": ["Дочка тоже готовит стихотворение.", "Костюм уже сшили."],
    "clinic": ["Сегодня в регистратуре очередь небольшая.", "Я записалась через Госуслуги, всё получилось."],
    "culture": ["Мы придём всей семьёй.", "Дочка ходит в студию второй год."],
    "transport": ["Сохранила себе расписание.", "Объявление видела на остановке."],
}

TOXIC = [
    "Да вы там все дармоеды, только бумажки перекладываете!",
    "Идиоты, кто так чистит дороги? Руки из жопы у ваших подрядчиков.",
    "Хватит врать, клоуны. Ничего вы не сделаете.",
    "Сам ты дурак, если веришь этим сказкам.",
    "Достали, бл*ть, каждый год одно и то же!",
    "Заткнись уже, умник, без тебя тошно.",
    "Чтоб вам самим без воды посидеть, уроды.",
    "Начальство зажралось, а людям хоть сдохни.",
    "Тупые бездельники, вам бы только зарплату получать.",
    "Да пошли вы со своими отчётами.",
]

FOLLOW_UPS = [
    "Спасибо за ответ!",
    "А сроки конкретные какие?",
    "Понятно, будем ждать.",
    "Это вы уже месяц обещаете.",
    "Спасибо, дозвонилась.",
]

ANSWERS = {
    "admin": [
        "Добрый день! Информация передана в отдел благоустройства, работы запланированы на эту неделю.",
        "Здравствуйте! Обращение зарегистрировано, ответ направим в течение 3 рабочих дней.",
        "Добрый день. График приёма размещён на сайте администрации в разделе «Обращения граждан».",
        "Здравствуйте! Подрядчик уведомлён, выезд бригады сегодня после обеда.",
        "Добрый день! Напишите, пожалуйста, точный адрес в личные сообщения сообщества.",
    ],
    "zhkh": [
        "Здравствуйте! Аварийная бригада работает на месте, подачу воды восстановят до 19:00.",
        "Добрый день! Заявка принята, мастер придёт сегодня до 17:00.",
        "Телефон круглосуточной диспетчерской указан в шапке сообщества.",
        "Здравствуйте! Перерасчёт будет выполнен автоматически в следующей квитанции.",
    ],
    "school": [
        "Добрый день! Расписание опубликовано в электронном дневнике.",
        "Здравствуйте! Уроки у 5-х классов заканчиваются в 13:10.",
        "Добрый день, подробности у классного руководителя, контакты есть в чате класса.",
    ],
    "kindergarten": [
        "Здравствуйте! Утренник состоится 20 декабря в 10:00.",
        "Добрый день! Постановка в очередь — через Госуслуги или в управлении образования.",
        "Здравствуйте, информация о карантине будет размещена отдельно.",
    ],
    "clinic": [
        "Здравствуйте! Талоны к ЛОР-врачу открываются по понедельникам в 8:00.",
        "Добрый день! Направление на МРТ выдаёт лечащий врач. Обратитесь к участковому терапевту.",
        "Здравствуйте! Используется отечественная вакцина. Приходите, приём без записи.",
        "Приносим извинения. Передали информацию заведующему, ситуацию разберём.",
    ],
    "culture": [
        "Здравствуйте! Вход свободный, начало в 15:00.",
        "Добрый день! В коллектив принимаем детей с 6 лет, приходите на пробное занятие.",
        "В субботу работаем с 10:00 до 16:00.",
    ],
    "transport": [
        "Здравствуйте! Рейс 7:10 отменён из-за поломки автобуса, приносим извинения.",
        "Новое расписание размещено на сайте предприятия и на остановках.",
        "Добрый день! Терминал заменён, оплата картой работает.",
    ],
}

EDIT_SUFFIXES = [" UPD: уже третий день так.", " (исправила адрес)", " Фото прикрепить не получается."]


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
    rng = random.Random(SEED)
    citizens = sorted(rng.sample(range(100_000_000, 800_000_000), 220))
    admins = {p[0]: rng.randrange(10_000_000, 90_000_000) for p in PAGES}

    def fill(text: str) -> str:
        loc, gen = rng.choice(VILLAGES)
        return text.format(street=rng.choice(STREETS), village=loc, village_gen=gen,
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
            pool = {"question": QUESTIONS[topic], "complaint": COMPLAINTS[topic],
                    "thanks": THANKS_COMMON + THANKS[topic],
                    "neutral": NEUTRAL_COMMON + NEUTRAL[topic], "toxic": TOXIC}[kind]
            c = comment(owner, t, fill(rng.choice(pool)), author, post)
            if kind == "question":
                questions += 1
                delay = rng.randint(6 * 60, 3 * 3600)
                if rng.random() < ANSWER_RATE[tier] and t + delay <= ts_at(19.5):
                    answers += 1
                    a = comment(owner, t + delay, rng.choice(ANSWERS[topic]), owner, post, parent=c)
                    a.created_by = admins[owner]
                    if rng.random() < 0.35:
                        comment(owner, a.ts + rng.randint(120, 3600), rng.choice(FOLLOW_UPS),
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
                     text=c.text + rng.choice(EDIT_SUFFIXES))
            # another citizen argues with the commenter now and then
            if kind in ("complaint", "neutral") and rng.random() < 0.15:
                other = rng.choice(citizens)
                text = rng.choice(TOXIC) if rng.random() < 0.25 else rng.choice(NEUTRAL_COMMON + FOLLOW_UPS[3:])
                comment(owner, t + rng.randint(60, 1800), fill(text), other, post, parent=c)

    for page in PAGES:
        owner, _, _, _, _, _, tier, topic = page
        lo, hi = POSTS_PER_TIER[tier]
        n_posts = rng.randint(lo, hi)
        hours = sorted(rng.uniform(8.0, 17.5) for _ in range(n_posts))
        for h in hours:
            post = Item(owner, "post", ts_at(h), fill(rng.choice(POSTS[topic])), owner,
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
    for t, text in (
        (ts_at(9.2), "Подскажите, фельдшер сегодня принимает? Дверь закрыта"),
        (ts_at(11.7), "Почему никто не отвечает? Вторую неделю пишем"),
        (ts_at(14.4), "Когда привезут лекарства для льготников в Красный Бор?"),
    ):
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
        envelope = {
            "type": ev.type,
            "group_id": -ev.item.owner,
            "event_id": hashlib.sha1(f"dozor-sample:{SEED}:{n}".encode()).hexdigest(),
            "v": API_VERSION,
            "object": render(ev),
        }
        lines.append(json.dumps(envelope, ensure_ascii=False, separators=(",", ":")))

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
    lines.insert(MISSING_FIELDS_LINE - 1, json.dumps(missing, ensure_ascii=False, separators=(",", ":")))

    (HERE / "vk_events.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (HERE / "pages.yaml").write_text(pages_yaml(), encoding="utf-8")

    types: dict[str, int] = {}
    for ev in events:
        types[ev.type] = types.get(ev.type, 0) + 1
    n_toxic = sum(1 for ev in events if ev.type == "wall_reply_new" and ev.item.text in TOXIC)
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
        obj = {
            "inner_type": "wall_wallpost",
            "id": it.id,
            "owner_id": it.owner,
            "from_id": it.owner,
            "created_by": it.created_by,
            "date": it.ts,
            "text": it.text,
            "post_type": "post",
            "marked_as_ads": 0,
            "can_edit": 1,
            "can_delete": 1,
            "comments": {"count": 0, "can_post": 1, "groups_can_post": True},
            "likes": {"count": 0, "user_likes": 0, "can_like": 1, "can_publish": 1},
            "reposts": {"count": 0, "user_reposted": 0},
            "views": {"count": 1},
            "is_favorite": False,
        }
        return obj
    if ev.type == "wall_reply_delete":
        return {"owner_id": it.owner, "id": it.id, "user_id": ev.deleted_by, "post_id": it.post.id}
    obj = {
        "id": it.id,
        "from_id": it.author,
        "post_id": it.post.id,
        "owner_id": it.owner,
        "parents_stack": [],
        "date": it.ts,
        "text": ev.text if ev.text is not None else it.text,
    }
    if it.parent is not None:
        root = it.parent
        while root.parent is not None:
            root = root.parent
        # VK threads are two levels deep: parents_stack holds the top-level comment
        obj["parents_stack"] = [root.id]
        obj["reply_to_user"] = it.parent.author
        obj["reply_to_comment"] = it.parent.id
    else:
        obj["thread"] = {"count": 0, "items": [], "can_post": True,
                         "show_reply_button": True, "groups_can_post": True}
    return obj


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
