"""`dozor moderation` and `dozor users`: the moderation service's command line (thin shells)."""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

MODERATION_DESCRIPTION = """\
The moderators' queue. Without an action: run the moderation service — consume the flags,
flag updates and events the worker sends (DOZOR_TOPIC_FLAGS, DOZOR_TOPIC_FLAG_UPDATES,
DOZOR_TOPIC_EVENTS) into the store (DOZOR_DATABASE_URL; default a SQLite file in
DOZOR_DATA_DIR), serve the Russian web UI and the API under /api/v1 on
DOZOR_MODERATION_HOST:DOZOR_MODERATION_PORT, /metrics apart on
DOZOR_METRICS_HOST:DOZOR_MODERATION_METRICS_PORT (9466), and produce «модель ошиблась»
corrections to DOZOR_TOPIC_FEEDBACK. Behind an HTTPS proxy set
DOZOR_MODERATION_TRUSTED_PROXIES to its address, so the login rate limit sees the real
clients. Migrations run on start. Create the first user with `dozor users add`.
"""

MODERATION_EPILOG = """\
examples:
  DOZOR_KAFKA_BOOTSTRAP=kafka:9092 DOZOR_DATABASE_URL=postgresql+psycopg://dozor@db/dozor dozor moderation
  dozor moderation migrate                      bring the database schema up to date
  dozor moderation export-feedback --out feedback.csv
  dozor model train --data feedback.csv --output models/tuned
"""

USERS_DESCRIPTION = """\
Users of the moderation web UI and API. Roles: operator (ЦУР: every municipality),
municipal (only the pages of the municipalities given with --municipality, as named in the
page registry), admin (every municipality, manages users). Passwords are stored as argon2
hashes, API tokens as sha256 hashes. Works on DOZOR_DATABASE_URL (migrated first if needed).
"""

USERS_EPILOG = """\
examples:
  dozor users add admin --role admin                           asks for the password
  echo "$PASSWORD" | dozor users add anna --role municipal --municipality "Сыктывкар" --password-stdin
  dozor users list
  dozor users token robot --name grafana                       prints the token once
  dozor users revoke-token robot --name grafana                the token stops working
  dozor users disable anna
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add `dozor moderation ...` and `dozor users ...` to the `dozor` command."""
    moderation = sub.add_parser(
        "moderation", help="run the moderators' queue (web UI, API, Kafka consumer)",
        description=MODERATION_DESCRIPTION, epilog=MODERATION_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    moderation.set_defaults(handler=cmd_serve)
    actions = moderation.add_subparsers(dest="moderation_command", metavar="ACTION")
    migrate = actions.add_parser(
        "migrate", help="apply the database migrations (or undo them with --downgrade)",
        description="Bring the moderation store's schema to the newest revision (what "
        "`dozor moderation` also does on start). --downgrade base removes every table of the "
        "store, data included.",
    )
    migrate.add_argument("--downgrade", metavar="REVISION", default=None,
                         help="undo migrations down to REVISION ('base': drop everything)")
    migrate.set_defaults(handler=cmd_migrate)
    export = actions.add_parser(
        "export-feedback", help="write the moderators' corrections as a training CSV",
        description="Write every «модель ошиблась» correction (the newest per item) as the CSV "
        "`dozor model train --data` takes: columns text,label; label is the right labels joined "
        "by ';' (question, negative, toxic) or 'none'.",
    )
    export.add_argument("--out", type=Path, required=True, help="CSV file to write")
    export.set_defaults(handler=cmd_export_feedback)

    users = sub.add_parser(
        "users", help="add, list and disable moderation users; passwords and API tokens",
        description=USERS_DESCRIPTION, epilog=USERS_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    users_sub = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = users_sub.add_parser("add", help="create a user",
                               description="Create a user; the password is asked for (twice) "
                               "unless --password-stdin reads it from the first line of stdin.")
    add.add_argument("login", help="login name")
    add.add_argument("--role", required=True, choices=("operator", "municipal", "admin"),
                     help="operator: all municipalities; municipal: only --municipality; admin: all + users")
    add.add_argument("--municipality", action="extend", nargs="+", default=[], metavar="NAME",
                     help="municipalities the user may see, as named in the page registry "
                     "(several after one flag, or the flag repeated; needed for municipal)")
    add.add_argument("--display-name", default=None, help="name shown in the UI and the audit log")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from stdin instead of asking")
    add.set_defaults(handler=cmd_users_add)
    lst = users_sub.add_parser("list", help="list the users", description="List every user.")
    lst.set_defaults(handler=cmd_users_list)
    disable = users_sub.add_parser("disable", help="disable a user (sessions and tokens stop)",
                                   description="Disable a user: their sessions end and their "
                                   "API tokens stop working. The audit log keeps their name.")
    disable.add_argument("login")
    disable.set_defaults(handler=cmd_users_disable)
    setpw = users_sub.add_parser("set-password", help="set a new password (sessions end)",
                                 description="Set a user's password; their sessions end.")
    setpw.add_argument("login")
    setpw.add_argument("--password-stdin", action="store_true",
                       help="read the password from stdin instead of asking")
    setpw.set_defaults(handler=cmd_users_set_password)
    token = users_sub.add_parser("token", help="create an API token for a user (shown once)",
                                 description="Create an API token (Authorization: Bearer <token>) "
                                 "for the user. It is printed once; only its hash is stored.")
    token.add_argument("login")
    token.add_argument("--name", required=True, help="what the token is for, e.g. grafana")
    token.set_defaults(handler=cmd_users_token)
    revoke = users_sub.add_parser("revoke-token", help="disable a user's API token(s) by name",
                                  description="Disable the user's API tokens of that name "
                                  "(`dozor users token LOGIN --name N`): requests with them "
                                  "get 401 from now on. The user and other tokens stay.")
    revoke.add_argument("login")
    revoke.add_argument("--name", required=True, help="the token's name, as given when created")
    revoke.set_defaults(handler=cmd_users_revoke_token)


# ------------------------------------------------------------------ handlers


def _settings():
    from services.settings import load_settings

    return load_settings()


def _store(settings=None):
    from sqlalchemy.exc import OperationalError

    from services.moderation.service import open_migrated_store, store_url

    settings = settings or _settings()
    try:
        return open_migrated_store(settings)
    except OperationalError as exc:
        from sqlalchemy.engine import make_url

        shown = make_url(store_url(settings)).render_as_string(hide_password=True)
        raise SystemExit(f"dozor: база модерации {shown} недоступна: {exc.orig}\n"
                         "Проверьте DOZOR_DATABASE_URL и что сервер базы данных запущен.") from None


def cmd_serve(args) -> int:
    from services.moderation.service import run

    return run(_settings())


def cmd_migrate(args) -> int:
    from services.moderation.db import make_engine
    from services.moderation.migrations import current, downgrade, upgrade
    from services.moderation.service import store_url

    url = store_url(_settings())
    make_engine(url).dispose()
    if args.downgrade:
        downgrade(url, args.downgrade)
    else:
        upgrade(url)
    print(f"схема базы модерации: {current(url) or 'пусто (base)'}")
    return 0


def cmd_export_feedback(args) -> int:
    from services.moderation.feedback import export_feedback

    n = export_feedback(_store(), args.out)
    print(f"{args.out}: {n} строк(и) для `dozor model train --data {args.out}`", file=sys.stderr)
    return 0


def _read_password(from_stdin: bool) -> str:
    from services.moderation.store import MIN_PASSWORD_LENGTH

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("Пароль: ")
        if getpass.getpass("Пароль ещё раз: ") != password:
            raise SystemExit("dozor: пароли не совпали, попробуйте ещё раз")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise SystemExit(f"dozor: пароль короче {MIN_PASSWORD_LENGTH} символов; придумайте длиннее")
    return password


def _warn_unknown_municipalities(settings, names: list[str]) -> None:
    if not settings.pages_file:
        return
    from streams.pages import PageRegistry

    known = {page.municipality for page in PageRegistry.load(settings.pages_file)}
    for name in names:
        if name not in known:
            print(f"внимание: муниципалитета «{name}» нет в реестре страниц {settings.pages_file}; "
                  f"пользователь не увидит ни одного элемента, пока он там не появится. "
                  f"Известные: {', '.join(sorted(known))}", file=sys.stderr)


def cmd_users_add(args) -> int:
    from services.moderation.errors import ModerationError

    settings = _settings()
    if args.role == "municipal" and not args.municipality:
        raise SystemExit("dozor: для роли municipal укажите хотя бы один --municipality НАЗВАНИЕ")
    _warn_unknown_municipalities(settings, args.municipality)
    password = _read_password(args.password_stdin)
    store = _store(settings)
    try:
        user = store.add_user(args.login, args.role, password, display_name=args.display_name,
                              municipalities=args.municipality)
    except ModerationError as exc:
        raise SystemExit(f"dozor: {exc}") from None
    except ValueError as exc:
        raise SystemExit(f"dozor: {exc}") from None
    scope = ", ".join(user.municipalities) if user.municipalities else "все муниципалитеты"
    print(f"пользователь {user.login} ({user.role}; {scope}) создан")
    return 0


def cmd_users_list(args) -> int:
    users = _store().list_users()
    if not users:
        print("пользователей нет; создайте первого: dozor users add admin --role admin")
        return 0
    for user in users:
        scope = ", ".join(user.municipalities) if user.municipalities else "все"
        state = "отключён" if user.disabled else "активен"
        print(f"{user.login}\t{user.role}\t{scope}\t{state}\t{user.display_name}")
    return 0


def cmd_users_disable(args) -> int:
    from services.moderation.errors import NotFound

    try:
        _store().disable_user(args.login)
    except NotFound as exc:
        raise SystemExit(f"dozor: {exc}; список: dozor users list") from None
    print(f"пользователь {args.login} отключён: сессии закрыты, токены не действуют")
    return 0


def cmd_users_set_password(args) -> int:
    from services.moderation.errors import NotFound

    store = _store()
    if store.get_user(args.login) is None:
        raise SystemExit(f"dozor: нет пользователя {args.login!r}; список: dozor users list")
    password = _read_password(args.password_stdin)
    try:
        store.set_password(args.login, password)
    except NotFound as exc:
        raise SystemExit(f"dozor: {exc}") from None
    print(f"пароль пользователя {args.login} изменён, его сессии закрыты")
    return 0


def cmd_users_token(args) -> int:
    store = _store()
    user = store.get_user(args.login)
    if user is None:
        raise SystemExit(f"dozor: нет пользователя {args.login!r}; список: dozor users list")
    if user.disabled:
        raise SystemExit(f"dozor: пользователь {args.login} отключён; токен не будет работать")
    token = store.create_token(user, args.name)
    print(token)
    print(f"токен «{args.name}» для {user.login}: показан один раз, сохраните его "
          "(заголовок Authorization: Bearer <токен>)", file=sys.stderr)
    return 0


def cmd_users_revoke_token(args) -> int:
    store = _store()
    user = store.get_user(args.login)
    if user is None:
        raise SystemExit(f"dozor: нет пользователя {args.login!r}; список: dozor users list")
    n = store.disable_token(user, args.name)
    if n == 0:
        raise SystemExit(f"dozor: у пользователя {args.login} нет токена «{args.name}»")
    print(f"токен «{args.name}» пользователя {user.login} отключён ({n} шт.): "
          "запросы с ним получат 401")
    return 0
