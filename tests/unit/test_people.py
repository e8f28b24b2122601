"""People: users and their passwords, tokens that belong to users, signing in, the bootstrap
token, refused requests in the audit trail, the CLI's actor and `--as`, department scoping.

Real application and CLI on a migrated SQLite store; the shared store of the throttle is the
embedded one (its own SQLite file under the test's var/).
"""

from __future__ import annotations

import getpass
import logging
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from publisher.api.app import create_app
from publisher.api.refusals import RefusalLimiter
from publisher.auth import forget_cached_tokens, hash_token, issue_token
from publisher.cli import main
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import Database, get_database
from publisher.errors import InvalidInput
from publisher.models import ApiToken, AuditEvent, User, utcnow
from publisher.services.items import create_item
from publisher.services.users import (
    LOGIN_ATTEMPTS_PER_USER,
    create_user,
    find_user,
    get_user,
    seed_demo_users,
    verify_password,
)
from tests.support import failed_delivery, item_fields, user_with_token

PASSWORD = "correct horse battery staple"
BOOTSTRAP = "bootstrap-token-of-the-people-tests-0123456789"


@pytest.fixture
def settings(publisher_env: Settings) -> Settings:
    return publisher_env


@pytest.fixture
def database(settings: Settings) -> Database:
    return get_database(settings)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_user(database: Database, name: str, role: str, *departments: str) -> None:
    with database.session() as session:
        create_user(
            session,
            name=name,
            role=role,
            departments=list(departments),
            password=PASSWORD,
            actor="test",
        )


def audit_rows(database: Database, action: str) -> list[AuditEvent]:
    with database.session() as session:
        rows = list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        session.expunge_all()
    return rows


def every_audit_text(database: Database) -> str:
    with database.session() as session:
        return " ".join(
            f"{r.actor} {r.subject} {r.details} {r.client_address}"
            for r in session.scalars(select(AuditEvent))
        )


def cli(*args: str, input: str | None = None) -> Any:
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


# --- users and passwords ------------------------------------------------------------------------


def test_a_password_is_stored_as_argon2id_and_checked(database: Database) -> None:
    make_user(database, "张三", "editor", "sgj")
    with database.session() as session:
        stored = session.scalars(select(User.password_hash).where(User.name == "张三")).one()
        assert stored is not None and stored.startswith("$argon2id$")
        assert PASSWORD not in stored
        assert verify_password(session, "张三", PASSWORD) is not None
        assert verify_password(session, "张三", PASSWORD + "x") is None
        assert verify_password(session, "李四", PASSWORD) is None  # no such user


def test_a_hash_made_with_older_parameters_is_replaced_at_sign_in(database: Database) -> None:
    make_user(database, "王五", "operator")
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash(PASSWORD)
    with database.session() as session:
        user = session.scalars(select(User).where(User.name == "王五")).one()
        user.password_hash = weak
    with database.session() as session:
        assert verify_password(session, "王五", PASSWORD) is not None
    with database.session() as session:
        renewed = session.scalars(select(User.password_hash).where(User.name == "王五")).one()
    assert renewed != weak and renewed is not None
    assert not PasswordHasher().check_needs_rehash(renewed)


@pytest.mark.parametrize(
    ("name", "role", "departments", "password", "problem"),
    [
        ("张三", "editor", [], PASSWORD, ("departments", "required")),
        ("张三", "reviewer", [], PASSWORD, ("departments", "required")),
        ("张三", "operator", ["sgj"], PASSWORD, ("departments", "not_allowed")),
        ("张三", "editor", ["nosuch"], PASSWORD, ("departments", "known")),
        ("张三", "clerk", [], PASSWORD, ("role", "known")),
        ("张三", "admin", [], "short", ("password", "min_length")),
        ("two words", "admin", [], PASSWORD, ("name", "format")),
        ("cli:root", "admin", [], PASSWORD, ("name", "format")),
        ("bootstrap", "admin", [], PASSWORD, ("name", "reserved")),
        ("taken", "admin", [], PASSWORD, ("name", "unique")),
    ],
)
def test_bad_users_are_refused_naming_field_and_rule(
    database: Database,
    name: str,
    role: str,
    departments: list[str],
    password: str,
    problem: tuple[str, str],
) -> None:
    make_user(database, "taken", "supervisor")
    with pytest.raises(InvalidInput) as refused, database.session() as session:
        create_user(
            session, name=name, role=role, departments=departments, password=password, actor="t"
        )
    assert problem in {(p.field, p.rule) for p in refused.value.problems}


def test_cli_user_create_reads_a_piped_password_or_prints_a_generated_one(
    settings: Settings, database: Database
) -> None:
    made = cli("user", "create", "张三", "--role", "editor", "--department", "sgj", input=PASSWORD)
    assert made.exit_code == 0, made.output
    assert made.output == "已创建用户 张三（角色：editor 编辑，部门：sgj）\n"
    assert PASSWORD not in made.output
    generated = cli("user", "create", "ops", "--role", "operator")  # nothing piped
    assert generated.exit_code == 0, generated.output
    password = generated.output.split("密码：")[1].split()[0]
    assert "（只显示这一次）" in generated.output
    with database.session() as session:
        assert verify_password(session, "张三", PASSWORD) is not None
        assert verify_password(session, "ops", password) is not None
    listed = cli("user", "list").output
    assert "张三" in listed and "editor" in listed and "sgj" in listed and "ops" in listed
    refused = cli("user", "create", "x", "--role", "operator", "--department", "sgj")
    assert refused.exit_code == 2
    assert refused.output == (
        "错误：只有编辑和审核人隶属于部门，运维人员不能指定部门"
        "（字段 departments，规则 not_allowed）\n"
    )
    assert "password" not in every_audit_text(database).replace("password_set", "")


# --- tokens -------------------------------------------------------------------------------------


def test_token_create_for_a_user_list_and_revoke(
    settings: Settings, database: Database, client: TestClient
) -> None:
    make_user(database, "张三", "editor", "sgj")
    made = cli("token", "create", "--user", "张三", "--label", "laptop", "--expires-days", "30")
    assert made.exit_code == 0, made.output
    token = made.output.strip()
    mine = client.get("/api/v1/tokens", headers=bearer(token))
    assert mine.status_code == 200, mine.text
    [row] = mine.json()["tokens"]
    assert (row["user"], row["label"], row["active"]) == ("张三", "laptop", True)
    assert token[:10] == row["prefix"] and token not in mine.text
    assert row["expires_at"][:10] == (utcnow() + timedelta(days=30)).date().isoformat()

    listed = cli("token", "list").output
    assert "laptop" in listed and "张三" in listed and token not in listed
    assert cli("token", "revoke", str(row["id"])).exit_code == 0
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 401
    assert cli("token", "list").output.count("laptop") == 0  # revoked: only with --all
    assert "laptop" in cli("token", "list", "--all").output
    assert cli("token", "create", "--user", "nobody").exit_code == 1
    both = cli("token", "create", "--user", "张三", "--role", "admin")
    assert both.exit_code == 2


def test_the_api_lists_and_revokes_own_tokens_and_admins_any(
    database: Database, client: TestClient
) -> None:
    editor = user_with_token(database, "editor", "sgj", name="editor-a")
    second = user_with_token(database, "editor", "sgj", name="editor-b")
    admin = user_with_token(database, "admin", name="root")
    own = client.get("/api/v1/tokens", headers=bearer(editor)).json()["tokens"]
    assert [t["user"] for t in own] == ["editor-a"]
    everyone = client.get("/api/v1/tokens", headers=bearer(admin)).json()["tokens"]
    assert {t["user"] for t in everyone} == {"editor-a", "editor-b", "root"}
    other = next(t["id"] for t in everyone if t["user"] == "editor-b")
    refused = client.delete(f"/api/v1/tokens/{other}", headers=bearer(editor))
    assert refused.status_code == 403
    assert client.get("/api/v1/tokens", headers=bearer(second)).status_code == 200
    assert client.delete(f"/api/v1/tokens/{other}", headers=bearer(admin)).status_code == 200
    assert client.get("/api/v1/tokens", headers=bearer(second)).status_code == 401
    assert client.delete("/api/v1/tokens/999", headers=bearer(admin)).status_code == 404
    assert [r.details["user"] for r in audit_rows(database, "token.revoke")] == ["editor-b"]


def test_expired_tokens_and_disabled_users_are_refused(
    database: Database, client: TestClient
) -> None:
    token = user_with_token(database, "operator", name="ops")
    assert client.get("/api/v1/channels", headers=bearer(token)).status_code == 200
    with database.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        row.one().expires_at = utcnow() - timedelta(seconds=1)
    forget_cached_tokens()  # as after TOKEN_CACHE_SECONDS
    assert client.get("/api/v1/channels", headers=bearer(token)).status_code == 401

    fresh = user_with_token(database, "operator", name="ops2")
    assert client.get("/api/v1/channels", headers=bearer(fresh)).status_code == 200
    assert cli("user", "disable", "ops2").exit_code == 0
    assert client.get("/api/v1/channels", headers=bearer(fresh)).status_code == 401


def test_last_used_is_written_at_most_once_a_minute(database: Database, client: TestClient) -> None:
    token = user_with_token(database, "operator", name="ops")

    def last_used() -> Any:
        with database.session() as session:
            return session.scalars(
                select(ApiToken.last_used_at).where(ApiToken.token_hash == hash_token(token))
            ).one()

    assert last_used() is None
    client.get("/api/v1/channels", headers=bearer(token))
    first = last_used()
    assert first is not None
    forget_cached_tokens()  # the next request looks the token up again
    client.get("/api/v1/channels", headers=bearer(token))
    assert last_used() == first  # within the minute: not written again
    with database.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_hash == hash_token(token)))
        row.one().last_used_at = first - timedelta(minutes=2)
    forget_cached_tokens()
    client.get("/api/v1/channels", headers=bearer(token))
    assert last_used() > first - timedelta(seconds=1)


# --- signing in ---------------------------------------------------------------------------------


def test_sign_in_gives_a_short_lived_token_of_the_user(
    database: Database, client: TestClient
) -> None:
    make_user(database, "张三", "editor", "sgj")
    resp = client.post("/api/v1/login", json={"name": "张三", "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["user"]["name"] == "张三" and body["user"]["departments"] == ["sgj"]
    [row] = client.get("/api/v1/tokens", headers=bearer(body["token"])).json()["tokens"]
    assert row["label"] == "login"
    lifetime = row["expires_at"] > (utcnow() + timedelta(hours=11)).isoformat()
    assert lifetime and row["expires_at"] < (utcnow() + timedelta(hours=13)).isoformat()
    [signed] = audit_rows(database, "auth.login")
    assert signed.actor == "张三" and signed.client_address == "testclient"


def test_failed_sign_ins_are_audited_without_the_password(
    database: Database, client: TestClient
) -> None:
    make_user(database, "张三", "editor", "sgj")
    wrong = client.post("/api/v1/login", json={"name": "张三", "password": "guess-1234567"})
    # A password typed in the name box: an unknown name is not recorded as typed.
    unknown = client.post("/api/v1/login", json={"name": "Hunter2-Secret!", "password": "x1"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()  # nothing tells a wrong password from a wrong name
    reasons = [(r.subject, r.details["reason"]) for r in audit_rows(database, "auth.login_failed")]
    assert reasons == [("user:张三", "wrong password"), ("user:?", "unknown user")]
    assert "guess-1234567" not in every_audit_text(database)
    assert "Hunter2-Secret!" not in every_audit_text(database)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/login", '{"name": "\\ud800", "password": "x"}'),
        (
            "/api/v1/users",
            '{"name": "li", "role": "editor", "departments": ["sgj"],'
            ' "password": "\\ud800\\ud800-long-enough"}',
        ),
    ],
)
def test_a_lone_surrogate_is_bad_input_not_a_crash(
    database: Database, client: TestClient, path: str, body: str
) -> None:
    make_user(database, "root", "admin")
    with database.session() as session:
        token = issue_token(session, get_user(session, "root"))
    resp = client.post(
        path, content=body, headers={**bearer(token), "Content-Type": "application/json"}
    )
    assert resp.status_code == 422, resp.text
    with database.session() as session:
        assert find_user(session, "li") is None  # nothing stored


def test_sign_in_is_throttled_per_user_name_and_per_address(
    database: Database, client: TestClient
) -> None:
    make_user(database, "张三", "editor", "sgj")
    for _ in range(LOGIN_ATTEMPTS_PER_USER):
        client.post("/api/v1/login", json={"name": "张三", "password": "guess-1234567"})
    throttled = client.post("/api/v1/login", json={"name": "张三", "password": PASSWORD})
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["Retry-After"]) > 0
    # Another name from the same address still signs in; the address has its own allowance.
    make_user(database, "李四", "editor", "sgj")
    ok = client.post("/api/v1/login", json={"name": "李四", "password": PASSWORD})
    assert ok.status_code == 200
    refused = audit_rows(database, "auth.refused")
    assert any(r.details["status"] == 429 for r in refused)


def test_demo_users_one_per_role_sign_in_with_the_printed_passwords(
    database: Database, client: TestClient
) -> None:
    with database.session() as session:
        made = [(u.name, u.role.value, p) for u, p in seed_demo_users(session)]
    assert [role for _, role, _ in made] == [
        "admin",
        "editor",
        "reviewer",
        "operator",
        "supervisor",
    ]
    for name, _, password in made:
        resp = client.post("/api/v1/login", json={"name": name, "password": password})
        assert resp.status_code == 200, (name, resp.text)
    with database.session() as session:
        again = dict((u.name, p) for u, p in seed_demo_users(session))
    assert again["admin"] != made[0][2]  # a new password at each start


# --- the bootstrap token ------------------------------------------------------------------------


def test_a_short_bootstrap_token_is_refused_naming_the_variable(
    publisher_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PUBLISHER_BOOTSTRAP_TOKEN", "too-short")
    reset_settings()
    with pytest.raises(ValidationError) as refused:
        get_settings()
    assert "PUBLISHER_BOOTSTRAP_TOKEN must be at least 32 characters" in str(refused.value)


def test_the_bootstrap_token_creates_the_first_admin_and_nothing_else(
    publisher_env: Settings,
    monkeypatch: pytest.MonkeyPatch,
    dispatched: list[Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("PUBLISHER_BOOTSTRAP_TOKEN", BOOTSTRAP)
    reset_settings()
    with caplog.at_level(logging.WARNING), TestClient(create_app(get_settings())) as client:
        assert "PUBLISHER_BOOTSTRAP_TOKEN is set" in caplog.text
        headers = bearer(BOOTSTRAP)
        items = client.get("/api/v1/items", headers=headers)
        assert items.status_code == 403 and "first admin" in items.json()["detail"]
        editor = {"name": "张三", "role": "editor", "departments": ["sgj"], "password": PASSWORD}
        assert client.post("/api/v1/users", json=editor, headers=headers).status_code == 403
        admin = {"name": "root", "role": "admin", "password": PASSWORD}
        made = client.post("/api/v1/users", json=admin, headers=headers)
        assert made.status_code == 201, made.text
        assert made.json()["role"] == "admin" and "password" not in made.json()
        again = client.post("/api/v1/users", json={**admin, "name": "root2"}, headers=headers)
        assert again.status_code == 403 and "admin user exists" in again.json()["detail"]
        # The new admin signs in and takes it from there.
        token = client.post("/api/v1/login", json={"name": "root", "password": PASSWORD})
        admin_headers = bearer(token.json()["token"])
        resp = client.post("/api/v1/users", json=editor, headers=admin_headers)
        assert resp.status_code == 201, resp.text
        names = [
            u["name"] for u in client.get("/api/v1/users", headers=admin_headers).json()["users"]
        ]
        assert names == ["root", "张三"]
        [created] = [
            r for r in audit_rows(get_database(), "user.create") if r.subject == "user:root"
        ]
        assert created.actor == "bootstrap"


# --- refused requests ---------------------------------------------------------------------------


def test_refused_requests_are_recorded_without_the_token(
    database: Database, client: TestClient
) -> None:
    secret = "pub_not-a-real-token-but-secret"
    assert client.get("/api/v1/items", headers=bearer(secret)).status_code == 401
    operator = user_with_token(database, "operator", name="ops")
    assert client.post("/api/v1/domains", json={}, headers=bearer(operator)).status_code == 403
    rows = audit_rows(database, "auth.refused")
    assert [(r.actor, r.details["status"], r.details["path"]) for r in rows] == [
        ("anonymous", 401, "/api/v1/items"),
        ("ops", 403, "/api/v1/domains"),
    ]
    assert rows[1].details["method"] == "POST" and "admin" in rows[1].details["reason"]
    assert all(r.client_address == "testclient" for r in rows)
    assert secret not in every_audit_text(database) and operator not in every_audit_text(database)


def test_refusals_past_the_allowance_are_counted_not_written() -> None:
    limiter = RefusalLimiter(per_window=2, window=0.2)
    assert [limiter.admit("10.0.0.1") for _ in range(5)] == [0, 0, None, None, None]
    assert limiter.admit("10.0.0.2") == 0  # each address has its own allowance
    import time

    time.sleep(0.25)
    assert limiter.admit("10.0.0.1") == 3  # the next row says how many were left out


# --- the CLI's actor and --as -------------------------------------------------------------------


def test_cli_actions_are_recorded_under_the_os_user_and_the_as_name(
    settings: Settings, database: Database, dispatched: list[Any]
) -> None:
    make_user(database, "张三", "operator")
    os_user = getpass.getuser()
    assert cli("channels", "pause", "website").exit_code == 0
    assert cli("--as", "张三", "channels", "resume", "website").exit_code == 0
    actors = [r.actor for r in audit_rows(database, "channel.pause")] + [
        r.actor for r in audit_rows(database, "channel.resume")
    ]
    assert actors == [f"cli:{os_user}", f"cli:{os_user} as 张三"]
    unknown = cli("--as", "nobody", "channels", "pause", "website")
    assert unknown.exit_code == 2
    assert unknown.output == "错误：没有名为“nobody”的用户（字段 as，规则 known）\n"


def test_cli_as_takes_the_users_role_and_departments(
    settings: Settings, database: Database, dispatched: list[Any]
) -> None:
    with database.session() as session:
        sgj = create_item(session, settings, item_fields(), actor="t").id
        jyj = create_item(
            session, settings, item_fields(domain="education", department="jyj"), actor="t"
        ).id
    make_user(database, "张三", "editor", "jyj")
    make_user(database, "ops", "operator")
    listed = cli("--as", "张三", "items", "list").output
    assert "（共 1 条，显示 1 条）" in listed and "education 教育" in listed
    assert cli("--as", "张三", "items", "show", str(sgj)).exit_code == 1
    assert cli("--as", "张三", "items", "show", str(jyj)).exit_code == 0
    # The machine's operator: every item.
    assert "（共 2 条，显示 2 条）" in cli("items", "list").output
    refused = cli("--as", "ops", "items", "retract", str(jyj))
    assert refused.exit_code == 1
    assert refused.output == (
        "错误：此操作需要管理员（admin）或编辑（editor）角色，您的角色是运维人员（operator）\n"
    )
    assert cli("--as", "ops", "user", "list").exit_code == 1


# --- department scoping in the API --------------------------------------------------------------


def test_editors_and_reviewers_see_only_their_departments(
    settings: Settings, database: Database, client: TestClient
) -> None:
    with database.session() as session:
        ids = {}
        for department, domain in (("sgj", "welfare"), ("jyj", "education")):
            item = create_item(
                session,
                settings,
                item_fields(domain=domain, department=department),
                actor="t",
            )
            delivery = failed_delivery(session, item.id)
            ids[department] = (item.id, delivery.id)
    editor = bearer(user_with_token(database, "editor", "jyj"))
    reviewer = bearer(user_with_token(database, "reviewer", "sgj", "jyj"))
    supervisor = bearer(user_with_token(database, "supervisor"))
    operator = bearer(user_with_token(database, "operator"))

    def listed(path: str, headers: dict[str, str]) -> list[int]:
        resp = client.get(path, headers=headers)
        assert resp.status_code == 200, resp.text
        return sorted(
            r["item_id" if "deliveries" in path else "id"] for r in resp.json()["results"]
        )

    both = sorted(item_id for item_id, _ in ids.values())
    assert listed("/api/v1/items", editor) == [ids["jyj"][0]]
    assert listed("/api/v1/items?department=sgj", editor) == []
    assert listed("/api/v1/items", reviewer) == both
    assert listed("/api/v1/items", supervisor) == both
    assert listed("/api/v1/deliveries", editor) == [ids["jyj"][0]]
    assert listed("/api/v1/deliveries", operator) == both
    assert client.get("/api/v1/items", headers=operator).status_code == 403

    other_item, other_delivery = ids["sgj"]
    for path in (
        f"/api/v1/items/{other_item}",
        f"/api/v1/items/{other_item}/preview",
        f"/api/v1/items/{other_item}/attempts",
        f"/api/v1/deliveries/{other_delivery}",
    ):
        resp = client.get(path, headers=editor)
        assert resp.status_code == 403, (path, resp.text)
        assert "sgj" in resp.json()["detail"]
    assert client.get(f"/api/v1/items/{ids['jyj'][0]}", headers=editor).status_code == 200
