"""Review before publishing, through the REST API with real users and their tokens: stages in
order, nobody approves their own item or two stages, an edit voids approvals, send-back, the
urgent path, flags after approval, domains without stages; and a withdrawal that cannot be
cancelled. One CLI run with `--as`."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from sqlalchemy import select

from publisher.cli import main as cli
from publisher.config import Settings, get_settings, reset_settings
from publisher.db import get_database
from publisher.models import Approval, AuditEvent, Delivery
from tests.support import enable_signed_channels, user_with_token


@pytest.fixture
def settings(publisher_env: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Website and catalogue enabled (nothing is sent: the dispatcher records)."""
    enable_signed_channels(monkeypatch)
    reset_settings()
    return get_settings()


class People:
    """Real users with real tokens: headers by name."""

    def __init__(self) -> None:
        self.headers: dict[str, dict[str, str]] = {}

    def add(self, name: str, role: str, *departments: str) -> dict[str, str]:
        token = user_with_token(get_database(), role, *departments, name=name)
        self.headers[name] = {"Authorization": f"Bearer {token}"}
        return self.headers[name]

    def __getitem__(self, name: str) -> dict[str, str]:
        return self.headers[name]


@pytest.fixture
def people(client: TestClient) -> People:
    found = People()
    found.add("admin1", "admin")
    found.add("li", "editor", "sgj")  # 社管局 editor
    found.add("wang", "reviewer", "sgj")
    found.add("zhao", "reviewer", "sgj")
    found.add("qian", "reviewer", "jyj")  # another department's reviewer
    found.add("ops", "operator")
    return found


def item_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "2026年第四季度城乡低保资金发放情况公示",
        "body_html": "<p>本季度共发放低保金86.4万元。</p>",
        "summary": "第四季度低保资金发放",
        "domain": "welfare",
        "department": "sgj",
        "formed_on": (date.today() - timedelta(days=2)).isoformat(),
        "keywords": ["低保"],
    }
    body.update(overrides)
    return body


def create(client: TestClient, headers: dict[str, str], **overrides: Any) -> dict[str, Any]:
    resp = client.post("/api/v1/items", json=item_body(**overrides), headers=headers)
    assert resp.status_code == 201, resp.text
    view: dict[str, Any] = resp.json()
    return view


def post(client: TestClient, path: str, headers: dict[str, str], **kwargs: Any) -> Any:
    return client.post(f"/api/v1{path}", headers=headers, **kwargs)


def audit_actions(item_id: int) -> list[tuple[str, str]]:
    with get_database().session() as session:
        rows = session.scalars(
            select(AuditEvent).where(AuditEvent.item_id == item_id).order_by(AuditEvent.id)
        )
        return [(row.action, row.actor) for row in rows]


def desired_revisions(item_id: int) -> set[int | None]:
    with get_database().session() as session:
        return set(
            session.scalars(select(Delivery.desired_revision_id).where(Delivery.item_id == item_id))
        )


# --- stages in order -------------------------------------------------------------------------


def test_publish_is_refused_until_every_stage_approved_in_order(
    client: TestClient, people: People, dispatched: list[Any]
) -> None:
    item = create(client, people["li"])
    assert item["status"] == "draft"
    assert item["review"]["missing"] == ["初审", "终审"] and item["approvals"] == []
    refused = post(client, f"/items/{item['id']}/publish", people["li"])
    assert refused.status_code == 409
    assert "初审、终审" in refused.json()["detail"]
    assert post(client, f"/items/{item['id']}/approve", people["wang"]).status_code == 409

    submitted = post(client, f"/items/{item['id']}/submit", people["li"])
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["status"] == "submitted"
    assert post(client, f"/items/{item['id']}/submit", people["li"]).status_code == 409

    first = post(client, f"/items/{item['id']}/approve", people["wang"], json={"comment": "可"})
    assert first.status_code == 200, first.text
    view = first.json()
    assert view["status"] == "submitted" and view["review"]["missing"] == ["终审"]
    refused = post(client, f"/items/{item['id']}/publish", people["li"])
    assert refused.status_code == 409 and "终审" in refused.json()["detail"]

    second = post(client, f"/items/{item['id']}/approve", people["zhao"])
    assert second.status_code == 200, second.text
    view = second.json()
    assert view["status"] == "approved" and view["review"]["missing"] == []
    assert [
        (a["stage"], a["stage_name"], a["reviewer"], a["valid"]) for a in view["approvals"]
    ] == [
        (1, "初审", "wang", True),
        (2, "终审", "zhao", True),
    ]
    assert view["approvals"][0]["comment"] == "可"
    assert dispatched == []  # nothing goes out before publish

    published = post(client, f"/items/{item['id']}/publish", people["li"])
    assert published.status_code == 202, published.text
    assert published.json()["status"] == "published"
    assert published.json()["review"]["state"] == "approved"
    assert [kind for _, kind, _ in dispatched] == ["website"]
    assert audit_actions(item["id"]) == [
        ("item.create", "li"),
        ("item.submit", "li"),
        ("item.approve", "wang"),
        ("item.approve", "zhao"),
        ("item.publish", "li"),
    ]


def test_nobody_approves_their_own_item(client: TestClient, people: People) -> None:
    item = create(client, people["admin1"])  # an admin may write, submit and review
    assert post(client, f"/items/{item['id']}/submit", people["admin1"]).status_code == 200
    own = post(client, f"/items/{item['id']}/approve", people["admin1"])
    assert own.status_code == 403 and "自己" in own.json()["detail"]

    # Nor the author of its latest revision, though someone else created it.
    other = create(client, people["li"])
    edit = client.patch(
        f"/api/v1/items/{other['id']}", json={"summary": "更正摘要"}, headers=people["admin1"]
    )
    assert edit.status_code == 200, edit.text
    assert post(client, f"/items/{other['id']}/submit", people["li"]).status_code == 200
    assert post(client, f"/items/{other['id']}/approve", people["admin1"]).status_code == 403
    assert post(client, f"/items/{other['id']}/approve", people["wang"]).status_code == 200


def test_one_person_cannot_approve_two_stages_of_a_revision(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    assert post(client, f"/items/{item['id']}/approve", people["wang"]).status_code == 200
    twice = post(client, f"/items/{item['id']}/approve", people["wang"])
    assert twice.status_code == 403 and "初审" in twice.json()["detail"]
    view = client.get(f"/api/v1/items/{item['id']}", headers=people["li"]).json()
    assert view["status"] == "submitted" and view["review"]["missing"] == ["终审"]
    assert post(client, f"/items/{item['id']}/approve", people["zhao"]).status_code == 200


def test_reviewers_act_only_on_their_departments_items(client: TestClient, people: People) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    assert post(client, f"/items/{item['id']}/approve", people["qian"]).status_code == 403
    assert post(client, f"/items/{item['id']}/approve", people["li"]).status_code == 403  # role
    refused = post(client, f"/items/{item['id']}/send-back", people["qian"], json={"comment": "x"})
    assert refused.status_code == 403
    with get_database().session() as session:
        assert session.scalars(select(Approval)).first() is None


# --- edits and send-back -------------------------------------------------------------------------


def test_an_edit_voids_approvals_and_returns_the_item_to_draft(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    post(client, f"/items/{item['id']}/approve", people["wang"])
    post(client, f"/items/{item['id']}/approve", people["zhao"])
    edited = client.patch(
        f"/api/v1/items/{item['id']}", json={"title": "更正：低保资金发放"}, headers=people["li"]
    )
    assert edited.status_code == 200, edited.text
    view = edited.json()
    assert view["status"] == "draft"
    assert view["review"]["missing"] == ["初审", "终审"]
    assert [a["valid"] for a in view["approvals"]] == [False, False]
    assert all(a["voided_at"] for a in view["approvals"])
    refused = post(client, f"/items/{item['id']}/publish", people["li"])
    assert refused.status_code == 409
    assert ("item.approvals_voided", "li") in audit_actions(item["id"])


def test_an_edit_of_a_published_item_is_held_until_approved_and_published_again(
    client: TestClient, people: People, dispatched: list[Any]
) -> None:
    item = create(client, people["li"])
    for who in ("wang", "zhao"):
        post(client, f"/items/{item['id']}/submit", people["li"])
        post(client, f"/items/{item['id']}/approve", people[who])
    assert post(client, f"/items/{item['id']}/publish", people["li"]).status_code == 202
    first = item["revision"]["id"]
    assert desired_revisions(item["id"]) == {first}
    dispatched.clear()

    edited = client.patch(
        f"/api/v1/items/{item['id']}", json={"summary": "补充说明"}, headers=people["li"]
    ).json()
    assert edited["status"] == "published"  # its channels keep the approved text
    assert edited["review"]["held"] and edited["review"]["shown_revision"] == 1
    assert desired_revisions(item["id"]) == {first} and dispatched == []
    assert post(client, f"/items/{item['id']}/publish", people["li"]).status_code == 409

    assert post(client, f"/items/{item['id']}/submit", people["li"]).status_code == 200
    post(client, f"/items/{item['id']}/approve", people["wang"])
    post(client, f"/items/{item['id']}/approve", people["zhao"])
    republished = post(client, f"/items/{item['id']}/publish", people["li"])
    assert republished.status_code == 202, republished.text
    assert desired_revisions(item["id"]) == {edited["revision"]["id"]}
    assert republished.json()["review"]["held"] is False


def test_send_back_needs_a_comment_and_returns_the_item_to_draft(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    post(client, f"/items/{item['id']}/approve", people["wang"])
    missing = post(client, f"/items/{item['id']}/send-back", people["zhao"], json={})
    assert missing.status_code == 422
    assert missing.json()["detail"][0]["loc"] == ["body", "comment"]
    empty = post(client, f"/items/{item['id']}/send-back", people["zhao"], json={"comment": " "})
    assert empty.status_code == 422
    assert [(d["loc"][-1], d["type"]) for d in empty.json()["detail"]] == [("comment", "required")]

    back = post(
        client, f"/items/{item['id']}/send-back", people["zhao"], json={"comment": "金额有误"}
    )
    assert back.status_code == 200, back.text
    view = back.json()
    assert view["status"] == "draft" and view["sent_back_comment"] == "金额有误"
    assert [a["valid"] for a in view["approvals"]] == [False]
    again = post(client, f"/items/{item['id']}/send-back", people["zhao"], json={"comment": "x"})
    assert again.status_code == 409

    resubmitted = post(client, f"/items/{item['id']}/submit", people["li"]).json()
    assert resubmitted["status"] == "submitted" and resubmitted["sent_back_comment"] is None
    assert resubmitted["review"]["missing"] == ["初审", "终审"]  # the review starts over
    with get_database().session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.action == "item.send_back")).one()
        assert row.details["comment"] == "金额有误" and row.item_id == item["id"]


# --- the urgent path -------------------------------------------------------------------------


def test_an_urgent_disaster_item_goes_out_with_one_approval_and_is_reviewed_afterwards(
    client: TestClient, people: People, dispatched: list[Any]
) -> None:
    typhoon = create(
        client,
        people["li"],
        domain="disaster",
        title="关于台风“海燕”紧急转移安置的通告",
        urgent=True,
    )
    post(client, f"/items/{typhoon['id']}/submit", people["li"])
    assert post(client, f"/items/{typhoon['id']}/publish", people["wang"]).status_code == 409
    assert post(client, f"/items/{typhoon['id']}/approve", people["wang"]).status_code == 200
    by_editor = post(client, f"/items/{typhoon['id']}/publish", people["li"])
    assert by_editor.status_code == 409 and "审核人" in by_editor.json()["detail"]

    published = post(client, f"/items/{typhoon['id']}/publish", people["wang"])
    assert published.status_code == 202, published.text
    view = published.json()
    assert view["status"] == "published" and view["post_review_pending"] is True
    assert view["review"]["missing"] == ["终审"]
    assert dispatched  # out at once

    assert post(client, f"/items/{typhoon['id']}/approve", people["wang"]).status_code == 403
    after = post(client, f"/items/{typhoon['id']}/approve", people["zhao"])
    assert after.status_code == 200, after.text
    view = after.json()
    assert view["post_review_pending"] is False and view["review"]["missing"] == []
    assert [a["post_review"] for a in view["approvals"]] == [False, True]
    listed = client.get("/api/v1/items", headers=people["wang"]).json()["results"]
    assert [i["post_review_pending"] for i in listed] == [False]


def test_the_urgent_path_is_only_for_urgent_items_of_the_disaster_domain(
    client: TestClient, people: People
) -> None:
    not_urgent = create(client, people["li"], domain="disaster", title="森林防火宣传月活动安排")
    urgent_welfare = create(client, people["li"], urgent=True)
    for item in (not_urgent, urgent_welfare):
        post(client, f"/items/{item['id']}/submit", people["li"])
        post(client, f"/items/{item['id']}/approve", people["wang"])
        refused = post(client, f"/items/{item['id']}/publish", people["wang"])
        assert refused.status_code == 409 and "终审" in refused.json()["detail"]


# --- flags after approval ------------------------------------------------------------------------


def test_urgent_push_and_channels_after_approval_are_a_reviewers_decision(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    post(client, f"/items/{item['id']}/approve", people["wang"])
    url = f"/api/v1/items/{item['id']}"
    changes: list[dict[str, Any]] = [{"urgent": True}, {"push": []}, {"channels": ["website"]}]
    for change in changes:
        refused = client.patch(url, json=change, headers=people["li"])
        assert refused.status_code == 403, (change, refused.text)
    text = client.patch(url, json={"title": "改标题"}, headers=people["zhao"])
    assert text.status_code == 403 and "审核人只能修改" in text.json()["detail"]

    decided = client.patch(url, json={"urgent": True}, headers=people["zhao"])
    assert decided.status_code == 200, decided.text
    view = decided.json()
    assert view["urgent"] is True
    assert view["review"]["missing"] == ["终审"]  # no new revision: the approval stands
    with get_database().session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.action == "item.flags")).one()
        assert row.actor == "zhao" and row.details["changed"] == {"urgent": [False, True]}


def test_marking_urgent_without_review_stages_is_a_reviewers_decision(
    client: TestClient, people: People
) -> None:
    resp = client.patch(
        "/api/v1/domains/welfare", json={"review_stages": []}, headers=people["admin1"]
    )
    assert resp.status_code == 200, resp.text
    refused = client.post("/api/v1/items", json=item_body(urgent=True), headers=people["li"])
    assert refused.status_code == 403 and "审核人" in refused.json()["detail"]
    item = create(client, people["li"])
    url = f"/api/v1/items/{item['id']}"
    assert client.patch(url, json={"urgent": True}, headers=people["li"]).status_code == 403
    assert client.patch(url, json={"urgent": True}, headers=people["wang"]).status_code == 200


# --- domains without stages, and their settings ---------------------------------------------


def test_a_domain_without_stages_publishes_directly_and_edits_follow_at_once(
    client: TestClient, people: People
) -> None:
    resp = client.patch(
        "/api/v1/domains/welfare", json={"review_stages": []}, headers=people["admin1"]
    )
    assert resp.status_code == 200 and resp.json()["review_stages"] == []
    item = create(client, people["li"])
    assert item["review"]["stages"] == [] and item["review"]["missing"] == []
    published = post(client, f"/items/{item['id']}/publish", people["li"])
    assert published.status_code == 202, published.text
    edited = client.patch(
        f"/api/v1/items/{item['id']}", json={"summary": "更新"}, headers=people["li"]
    ).json()
    assert desired_revisions(item["id"]) == {edited["revision"]["id"]}
    assert post(client, f"/items/{item['id']}/approve", people["wang"]).status_code == 409


def test_review_stages_and_required_fields_are_validated_and_audited(
    client: TestClient, people: People
) -> None:
    url = "/api/v1/domains/welfare"
    admin = people["admin1"]

    def rules(body: dict[str, Any]) -> set[tuple[str, str]]:
        resp = client.patch(url, json=body, headers=admin)
        assert resp.status_code == 422, resp.text
        return {(d["loc"][-1], d["type"]) for d in resp.json()["detail"]}

    assert rules({"review_stages": ["一审", "二审", "三审", "四审"]}) == {
        ("review_stages", "max_items")
    }
    assert rules({"review_stages": ["初审", "初审"]}) == {("review_stages", "unique")}
    assert rules({"review_stages": [""]}) == {("review_stages", "name")}
    assert rules({"required_metadata": ["doc_number", "colour"]}) == {
        ("required_metadata", "known")
    }
    assert client.patch(url, json={"review_stages": []}, headers=people["li"]).status_code == 403

    resp = client.patch(
        url,
        json={"review_stages": ["初审", "复审", "终审"], "required_metadata": ["doc_number"]},
        headers=admin,
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["review_stages"] == ["初审", "复审", "终审"]
    assert resp.json()["required_metadata"] == ["doc_number"]
    listed = client.get("/api/v1/domains", headers=people["li"]).json()["domains"]
    assert next(d for d in listed if d["code"] == "welfare")["review_stages"][1] == "复审"
    with get_database().session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.action == "domain.update")).one()
        assert row.details["review_stages_before"] == ["初审", "终审"]


def test_new_stages_apply_at_once_and_keep_the_stages_already_passed(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    post(client, f"/items/{item['id']}/approve", people["wang"])  # 初审
    client.patch(
        "/api/v1/domains/welfare",
        json={"review_stages": ["初审", "保密审查", "终审"]},
        headers=people["admin1"],
    )
    view = client.get(f"/api/v1/items/{item['id']}", headers=people["li"]).json()
    assert view["review"]["missing"] == ["保密审查", "终审"]
    people.add("sun", "reviewer", "sgj")
    post(client, f"/items/{item['id']}/approve", people["zhao"])
    last = post(client, f"/items/{item['id']}/approve", people["sun"]).json()
    assert [(a["stage"], a["stage_name"]) for a in last["approvals"]] == [
        (1, "初审"),
        (2, "保密审查"),
        (3, "终审"),
    ]
    assert last["status"] == "approved"


# --- moving an item to another domain ------------------------------------------------------------


def add_notice_domain(client: TestClient, people: People) -> None:
    """A domain without stages that 社管局 is responsible for too (an admin's choice)."""
    body = {
        "code": "notice",
        "name": "通知公告",
        "catecode": "0999",
        "departments": ["sgj"],
        "review_stages": [],
    }
    resp = client.post("/api/v1/domains", json=body, headers=people["admin1"])
    assert resp.status_code == 201, resp.text


def test_moving_a_submitted_item_to_a_domain_without_stages_is_a_reviewers_decision(
    client: TestClient, people: People, dispatched: list[Any]
) -> None:
    add_notice_domain(client, people)
    item = create(client, people["li"])
    url = f"/api/v1/items/{item['id']}"
    post(client, f"/items/{item['id']}/submit", people["li"])
    post(client, f"/items/{item['id']}/approve", people["wang"])
    post(client, f"/items/{item['id']}/approve", people["zhao"])
    assert post(client, f"/items/{item['id']}/publish", people["li"]).status_code == 202
    first = item["revision"]["id"]

    moved = client.patch(
        url, json={"domain": "notice", "body_html": "<p>B</p>"}, headers=people["li"]
    )
    assert moved.status_code == 403 and "领域" in moved.json()["detail"]
    assert client.patch(url, json={"domain": "notice"}, headers=people["li"]).status_code == 403
    assert desired_revisions(item["id"]) == {first}

    # An admin may move it and edit it at once: the edit is held, for the old domain had stages.
    moved = client.patch(
        url, json={"domain": "notice", "body_html": "<p>B</p>"}, headers=people["admin1"]
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["review"]["held"] is True
    assert desired_revisions(item["id"]) == {first}
    with get_database().session() as session:
        row = session.scalars(select(AuditEvent).where(AuditEvent.action == "item.flags")).one()
        assert row.actor == "admin1"
        assert row.details["changed"] == {"domain": ["welfare", "notice"]}
    # A reviewer may move it (no text of theirs): the domain is their decision.
    back = client.patch(url, json={"domain": "welfare"}, headers=people["wang"])
    assert back.status_code == 200, back.text

    # A draft sent back (submitted once) stays where a reviewer put it, too.
    draft = create(client, people["li"])
    post(client, f"/items/{draft['id']}/submit", people["li"])
    post(client, f"/items/{draft['id']}/send-back", people["wang"], json={"comment": "改"})
    refused = client.patch(
        f"/api/v1/items/{draft['id']}", json={"domain": "notice"}, headers=people["li"]
    )
    assert refused.status_code == 403
    assert post(client, f"/items/{draft['id']}/publish", people["li"]).status_code == 409

    # A draft never submitted may go to the domain an admin made without stages.
    fresh = create(client, people["li"])
    ok = client.patch(
        f"/api/v1/items/{fresh['id']}", json={"domain": "notice"}, headers=people["li"]
    )
    assert ok.status_code == 200, ok.text
    assert post(client, f"/items/{fresh['id']}/publish", people["li"]).status_code == 202


def test_an_editor_cannot_leave_an_item_urgent_in_a_domain_without_stages(
    client: TestClient, people: People
) -> None:
    add_notice_domain(client, people)
    item = create(client, people["li"])
    url = f"/api/v1/items/{item['id']}"
    urgent = client.patch(url, json={"domain": "welfare", "urgent": True}, headers=people["li"])
    assert urgent.status_code == 200, urgent.text  # welfare has stages: a reviewer will see it
    refused = client.patch(url, json={"domain": "notice"}, headers=people["li"])
    assert refused.status_code == 403 and "审核人" in refused.json()["detail"]
    both = client.patch(url, json={"domain": "notice", "urgent": True}, headers=people["li"])
    assert both.status_code == 403
    view = client.get(url, headers=people["li"]).json()
    assert view["domain"] == "welfare" and view["urgent"] is True
    assert client.patch(url, json={"domain": "notice"}, headers=people["wang"]).status_code == 200


def test_the_author_of_any_revision_cannot_approve(client: TestClient, people: People) -> None:
    item = create(client, people["li"])
    url = f"/api/v1/items/{item['id']}"
    by_admin = client.patch(url, json={"summary": "管理员改的摘要"}, headers=people["admin1"])
    assert by_admin.status_code == 200, by_admin.text
    again = client.patch(url, json={"summary": "编辑再改"}, headers=people["li"])
    assert again.status_code == 200, again.text  # admin1 no longer wrote the latest revision
    post(client, f"/items/{item['id']}/submit", people["li"])
    own = post(client, f"/items/{item['id']}/approve", people["admin1"])
    assert own.status_code == 403 and "自己" in own.json()["detail"]
    assert post(client, f"/items/{item['id']}/approve", people["wang"]).status_code == 200


# --- withdrawals -------------------------------------------------------------------------------


def test_a_withdrawal_cannot_be_cancelled_but_can_be_retried(
    client: TestClient, people: People
) -> None:
    client.patch("/api/v1/domains/welfare", json={"review_stages": []}, headers=people["admin1"])
    item = create(client, people["li"], channels=["website"])
    published = post(client, f"/items/{item['id']}/publish", people["li"]).json()
    delivery_id = published["deliveries"][0]["id"]
    assert post(client, f"/items/{item['id']}/retract", people["li"]).status_code == 202

    refused = post(client, f"/deliveries/{delivery_id}/cancel", people["ops"])
    assert refused.status_code == 409
    assert "withdrawal cannot be cancelled" in refused.json()["detail"]
    detail = client.get(f"/api/v1/deliveries/{delivery_id}", headers=people["ops"]).json()
    assert detail["state"] == "pending" and detail["desired_present"] is False
    retried = post(client, f"/deliveries/{delivery_id}/retry", people["ops"])
    assert retried.status_code == 202, retried.text


# --- the CLI -----------------------------------------------------------------------------------


def test_the_cli_submits_approves_and_sends_back_as_the_named_user(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])

    def run(*args: str) -> Any:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    submitted = run("--as", "li", "items", "submit", str(item["id"]))
    assert submitted.exit_code == 0, submitted.output
    assert submitted.output == f"信息 {item['id']}：已送审；等待审核：初审、终审\n"
    own = run("--as", "li", "items", "approve", str(item["id"]))
    assert own.exit_code == 1 and "reviewer" in own.output  # an editor does not approve
    ok = run("--as", "wang", "items", "approve", str(item["id"]), "--comment", "同意")
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"信息 {item['id']}：初审已通过；等待审核：终审\n"
    twice = run("--as", "wang", "items", "approve", str(item["id"]))
    assert (twice.exit_code, twice.output) == (
        1,
        "错误：您已通过本版本的初审，同一人不能审核两个环节\n",
    )
    empty = run("--as", "zhao", "items", "send-back", str(item["id"]), "--comment", "")
    assert (empty.exit_code, empty.output) == (
        2,
        "错误：退回须写明原因（字段 comment，规则 required）\n",
    )
    back = run("--as", "zhao", "items", "send-back", str(item["id"]), "--comment", "请补充附件")
    assert back.exit_code == 0, back.output
    shown = run("items", "show", str(item["id"])).output
    assert "请补充附件" in shown and "draft 草稿" in shown
    with get_database().session() as session:
        approval = session.scalars(select(Approval)).one()
        assert approval.reviewer == "wang" and approval.voided_at is not None
    assert run("domains", "update", "welfare", "--no-review").exit_code == 0
    updated = run("domains", "update", "welfare", "--no-review").output
    assert updated == "领域 welfare 已更新；审核环节：无（直接发布）\n"


def test_the_cli_operator_is_the_passwd_name_not_logname(
    client: TestClient, people: People, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import pwd

    from publisher.cli import common

    real = common.os_user()
    monkeypatch.setenv("LOGNAME", "x as zhao")
    monkeypatch.setenv("USER", "x as zhao")
    assert common.os_user() == real and " as " not in real and ":" not in real
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    ok = CliRunner().invoke(cli, ["items", "approve", str(item["id"])], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    with get_database().session() as session:
        approval = session.scalars(select(Approval)).one()
        assert approval.reviewer == f"cli:{real}"
    # zhao did not approve the first stage: zhao may approve the second.
    assert post(client, f"/items/{item['id']}/approve", people["zhao"]).status_code == 200

    class Entry:
        pw_name = "x as zhao"

    monkeypatch.setattr(pwd, "getpwuid", lambda uid: Entry())
    assert common.os_user() == f"uid{os.getuid()}"


def test_an_approval_recorded_as_a_cli_user_counts_for_that_person(
    client: TestClient, people: People
) -> None:
    item = create(client, people["li"])
    post(client, f"/items/{item['id']}/submit", people["li"])
    with get_database().session() as session:
        from publisher.models import Item
        from publisher.services.lookup import latest_revision

        rev = latest_revision(session, item["id"])
        assert session.get(Item, item["id"]) is not None
        session.add(
            Approval(
                item_id=item["id"],
                revision_id=rev.id,
                content_hash=rev.content_hash,
                stage=1,
                stage_name="初审",
                reviewer="cli:ops as wang",
            )
        )
    twice = post(client, f"/items/{item['id']}/approve", people["wang"])
    assert twice.status_code == 403 and "两个环节" in twice.json()["detail"]
    assert post(client, f"/items/{item['id']}/approve", people["zhao"]).status_code == 200


# --- the demo ----------------------------------------------------------------------------------


def test_the_demo_items_go_through_review_before_they_publish(
    settings: Settings, dispatched: list[Any]
) -> None:
    from publisher.demo import DEMO_ITEMS, load_demo
    from publisher.services.queries import item_view

    with get_database().session() as session:
        ids = load_demo(session, settings, enabled_kinds=["website", "catalogue"])
    assert len(ids) == len(DEMO_ITEMS)
    with get_database().session() as session:
        views = [item_view(session, item_id) for item_id in ids]
        assert load_demo(session, settings, enabled_kinds=["website"]) == []  # once
    assert {v["status"] for v in views} == {"published"}
    urgent = [v for v in views if v["domain"] == "disaster"]
    assert [v["post_review_pending"] for v in urgent] == [True]
    assert [a["reviewer"] for a in urgent[0]["approvals"]] == ["demo-reviewer-1"]
    for view in views:
        if view["domain"] != "disaster":
            assert [(a["stage_name"], a["reviewer"]) for a in view["approvals"]] == [
                ("初审", "demo-reviewer-1"),
                ("终审", "demo-reviewer-2"),
            ]
            assert view["created_by"] == "demo-editor"
