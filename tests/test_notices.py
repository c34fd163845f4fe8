"""Notices: templates in both languages, the outbox's idempotence, delivery to files, failures and email."""

from __future__ import annotations

import copy
import datetime as dt
import email
import email.policy
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from jinja2 import TemplateNotFound, UndefinedError
from sqlalchemy import func, select

from common.settings import get_settings
from storage.db import session_scope, upgrade
from storage.models import Notice
from tasks.notices import (
    CONTEXT_KEYS,
    deliver_pending,
    delivery_url,
    enqueue,
    mask_id,
    render,
    retry_delay,
    yuan,
)

ID_NUMBER = "450103199001011238"
MASKED_ID = "450***********1238"
BANK_ACCOUNT = "6222021234567890123"
MASKED_ACCOUNT = "622************0123"
DOCUMENT = "南府规〔2023〕26号《南宁市人民政府关于推进南宁市长期护理保险制度的实施意见》"
LANGUAGES = ["zh_CN", "en"]


def contexts() -> dict[str, dict[str, Any]]:
    """A realistic context for every kind of notice."""
    return {
        "application_received": {
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "application_id": "NN-2024-000123",
            "received_on": dt.date(2024, 3, 5),
        },
        "assessment_scheduled": {
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "application_id": "NN-2024-000123",
            "agency_name": "南宁市康宁失能评估中心",
            "scheduled_on": dt.date(2024, 3, 12),
            "what_to_prepare": ["申请人居民身份证原件", "近6个月的住院病历或诊断证明"],
        },
        "assessment_reminder": {
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "application_id": "NN-2024-000123",
            "agency_name": "南宁市康宁失能评估中心",
            "scheduled_on": dt.date(2024, 3, 12),
            "starts_at": "10:30",
            "what_to_prepare": ["申请人居民身份证原件"],
        },
        "agency_visit": {
            "agency_name": "南宁市康宁失能评估中心",
            "application_id": "NN-2024-000123",
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "scheduled_on": dt.date(2024, 3, 14),
            "starts_at": "09:00",
            "assessors": ["AG01-E3", "AG01-E4"],
            "reason": "objection",
        },
        "eligibility_decision": {
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "application_id": "NN-2024-000123",
            "approved": False,
            "grade": 2,
            "start_date": None,
            "rates": [],
            "reasons": [
                {
                    "code": "NOT_SEVERE",
                    "clause": "南府规〔2023〕26号 三(三)1",
                    "text": "经失能等级评估，您未被认定为重度失能，暂不符合长护险待遇享受条件。",
                }
            ],
            "document": DOCUMENT,
            "assumptions": ["home_quota_partial_month"],
            "draft": True,
            "counted": {"waiting": None, "continuous_years": 3},
        },
        "monthly_statement": {
            "person_name": "黄秀兰",
            "id_number": ID_NUMBER,
            "period": "2024-05",
            "lines": [
                {
                    "provider_name": "南宁市颐康护理院",
                    "care_mode": "institutional",
                    "days_submitted": 31,
                    "days_paid": 31,
                    "days_excluded": 0,
                    "payable_fen": 204600,
                    "personal_fen": 0,
                    "exclusions": [],
                },
                {
                    "provider_name": "南宁市安心居家护理服务中心",
                    "care_mode": "home",
                    "days_submitted": 4,
                    "days_paid": 0,
                    "days_excluded": 4,
                    "payable_fen": 0,
                    "personal_fen": 0,
                    "exclusions": [
                        {
                            "text": "因病住院治疗，自入院次日起至出院当日停止享受长护险待遇。",
                            "clause": "南府规〔2023〕26号 三(三)4",
                            "days": 4,
                        }
                    ],
                },
            ],
            "total_fen": 204600,
            "document": DOCUMENT,
            "draft": False,
        },
        "remittance_advice": {
            "provider_name": "南宁市颐康护理院",
            "period": "2024-05",
            "batch_ref": "NN-202405-P0007",
            "bank_account": BANK_ACCOUNT,
            "total_fen": 204600,
            "lines": [
                {
                    "person_name": "黄秀兰",
                    "id_number": ID_NUMBER,
                    "care_mode": "institutional",
                    "days_paid": 31,
                    "amount_fen": 204600,
                    "kind": "claim",
                    "care_period": "2024-05",
                }
            ],
            "document": DOCUMENT,
            "draft": False,
        },
        "payout_approval": {
            "approver_name": "李敏",
            "approver": "李敏",
            "jurisdiction": "nanning",
            "period": "2024-05",
            "payees": 3,
            "lines": 41,
            "total_fen": 8462050,
            "proposal_sha256": "9f" * 32,
            "run_name": "pay nanning 2024-05",
            "flow_run_id": "0b7c8d3e-0000-4000-8000-000000000001",
            "run_url": "http://127.0.0.1:4200/runs/flow-run/0b7c8d3e-0000-4000-8000-000000000001",
            "code": "K7QW2-M9XRT",
            "expires_at": "2024-06-09 09:00",
            "started_by": "ops-wang",
        },
    }


APPROVED = {
    "approved": True,
    "grade": 5,
    "start_date": dt.date(2024, 4, 1),
    "rates": ["机构护理 66.00 元/天", "居家护理 每月定额 1850.00 元"],
    "reasons": [],
    "assumptions": [],
    "draft": False,
}


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SQLite database and LTC home per test (engines are cached per URL)."""
    monkeypatch.setenv("LTC_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LTC_DATABASE_URL", f"sqlite:///{tmp_path}/t.db")
    upgrade()
    return tmp_path


def add_notice(
    url: str, dedupe_key: str = "decision:NN-2024-000123", kind: str = "eligibility_decision", **extra: Any
) -> None:
    context = contexts()[kind] | extra
    with session_scope() as s:
        enqueue(
            s,
            kind=kind,
            recipient_type="person",
            recipient_id="P0001",
            url=url,
            language="zh_CN",
            dedupe_key=dedupe_key,
            context=context,
        )


def notices() -> list[Notice]:
    with session_scope() as s:
        return list(s.scalars(select(Notice).order_by(Notice.id)))


# --- filters and templates ----------------------------------------------------------------------------------


def test_yuan_is_integer_arithmetic() -> None:
    assert yuan(204600) == "2046.00"
    assert yuan(5) == "0.05"
    assert yuan(0) == "0.00"
    assert yuan(-150) == "-1.50"
    assert yuan(10**15 + 1) == "10000000000000.01"
    with pytest.raises(TypeError):
        yuan(2046.0)  # type: ignore[arg-type]


def test_mask_id() -> None:
    assert mask_id(ID_NUMBER) == MASKED_ID
    assert mask_id("45010319900101123X") == "450***********123X"
    assert mask_id("6222 0212 3456 7890 123") == MASKED_ACCOUNT
    assert mask_id("1234567") == "*******"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(CONTEXT_KEYS))
def test_render_every_kind(kind: str, language: str) -> None:
    subject, body = render(kind, language, contexts()[kind])
    text = subject + "\n" + body
    assert subject and "\n" not in subject
    assert body.strip() and not body.startswith("\n") and body.endswith("\n")
    assert "{{" not in text and "{%" not in text
    if kind == "payout_approval":
        # To an approver: their code, the amount and the proposal's digest; no person's record.
        assert "K7QW2-M9XRT" in body and "84620.50" in body and "9f" * 32 in body and "ops-wang" in body
        return
    if kind == "remittance_advice":
        assert "南宁市颐康护理院" in body
        assert MASKED_ACCOUNT in body and BANK_ACCOUNT not in text
    else:
        assert "黄秀兰" in body
    assert MASKED_ID in body
    assert ID_NUMBER not in text
    if kind in ("monthly_statement", "remittance_advice"):
        assert "2046.00" in body
        assert "2024年5月" in text if language == "zh_CN" else "May 2024" in text
    if kind == "monthly_statement":
        assert "南府规〔2023〕26号 三(三)4" in body
        assert ("居家护理" if language == "zh_CN" else "home care") in body
    if kind == "eligibility_decision":
        assert "南府规〔2023〕26号 三(三)1" in body
        assert "未被认定为重度失能" in body
        assert "home_quota_partial_month" in body
        assert ("征求意见稿" in body) and (DOCUMENT in body)
        assert ("不予核准" if language == "zh_CN" else "refused") in subject


def test_zh_cn_wording() -> None:
    subject, body = render("application_received", "zh_CN", contexts()["application_received"])
    assert subject == "长期护理保险待遇申请受理通知（申请编号：NN-2024-000123）"
    assert body.startswith(f"黄秀兰（公民身份号码：{MASKED_ID}）：\n\n")
    assert "2024年3月5日" in body
    _, body = render("assessment_scheduled", "zh_CN", contexts()["assessment_scheduled"])
    assert "评估日期：2024年3月12日" in body
    assert "1. 申请人居民身份证原件\n2. 近6个月的住院病历或诊断证明\n" in body
    _, body = render("remittance_advice", "zh_CN", contexts()["remittance_advice"])
    assert f"1. 黄秀兰（公民身份号码：{MASKED_ID}），机构护理，支付31天，金额2046.00元\n" in body
    _, body = render("monthly_statement", "zh_CN", contexts()["monthly_statement"])
    assert "2. 南宁市安心居家护理服务中心（居家护理）\n" in body
    assert (
        "   不予支付4天：因病住院治疗，自入院次日起至出院当日停止享受长护险待遇"
        "（依据：南府规〔2023〕26号 三(三)4）。\n" in body
    )
    assert "本月长期护理保险基金支付合计：2046.00元。" in body
    context = copy.deepcopy(contexts()["monthly_statement"])
    context["lines"][1]["exclusions"] = [{"text": "超过每月定额标准", "clause": "三(三)3(2)", "days": 0}]
    _, body = render("monthly_statement", "zh_CN", context)
    assert "   不予支付：超过每月定额标准（依据：三(三)3(2)）。\n" in body


@pytest.mark.parametrize("language", LANGUAGES)
def test_approved_decision(language: str) -> None:
    context = contexts()["eligibility_decision"] | APPROVED
    subject, body = render("eligibility_decision", language, context)
    if language == "zh_CN":
        assert "待遇核准通知" in subject and "不予" not in subject
        assert "失能等级：重度失能Ⅲ级" in body
        assert "待遇享受起始日期：2024年4月1日" in body
        assert "征求意见稿" not in body and "未作明确规定" not in body
    else:
        assert "approved" in subject
        assert "severe disability, grade III" in body
        assert "1 April 2024" in body
        assert "draft" not in body and "not fixed" not in body
    assert "1. 机构护理 66.00 元/天" in body
    assert MASKED_ID in body and ID_NUMBER not in body


@pytest.mark.parametrize("grade", [0, 1, 2, 3, 4, 5])
def test_grade_names(grade: int) -> None:
    names = ["基本正常", "轻度失能", "中度失能", "重度失能Ⅰ级", "重度失能Ⅱ级", "重度失能Ⅲ级"]
    context = contexts()["eligibility_decision"] | APPROVED | {"grade": grade}
    _, body = render("eligibility_decision", "zh_CN", context)
    assert f"失能等级：{names[grade]}\n" in body


def test_language_fallback() -> None:
    context = contexts()["monthly_statement"]
    assert render("monthly_statement", "fr", context) == render("monthly_statement", "zh_CN", context)
    assert render("monthly_statement", "en_US", context) == render("monthly_statement", "en", context)
    with pytest.raises(TemplateNotFound):
        render("no_such_kind", "zh_CN", context)


@pytest.mark.parametrize("kind", sorted(CONTEXT_KEYS))
def test_missing_key_raises(kind: str) -> None:
    for key in CONTEXT_KEYS[kind]:
        context = contexts()[kind]
        del context[key]
        with pytest.raises(UndefinedError):
            render(kind, "zh_CN", context)


@pytest.mark.parametrize("kind", ["monthly_statement", "remittance_advice"])
def test_missing_line_key_raises(kind: str) -> None:
    context = copy.deepcopy(contexts()[kind])
    del context["lines"][0]["care_mode"]
    with pytest.raises(UndefinedError):
        render(kind, "en", context)


def test_unknown_care_mode_is_an_error() -> None:
    context = copy.deepcopy(contexts()["monthly_statement"])
    context["lines"][0]["care_mode"] = "hospital"
    with pytest.raises(ValueError, match="care mode"):
        render("monthly_statement", "zh_CN", context)


# --- the outbox and delivery --------------------------------------------------------------------------------


def test_enqueue_is_idempotent(db: Path) -> None:
    url = get_settings().default_notify_url
    with session_scope() as s:
        for _ in range(2):
            enqueue(
                s,
                kind="application_received",
                recipient_type="person",
                recipient_id="P0001",
                url=url,
                language="zh_CN",
                dedupe_key="received:NN-2024-000123",
                context=contexts()["application_received"],
            )
    add_notice(url, dedupe_key="received:NN-2024-000123", kind="application_received", person_name="另一人")
    rows = notices()
    assert len(rows) == 1
    row = rows[0]
    assert (row.kind, row.recipient_type, row.recipient_id, row.status, row.attempts) == (
        "application_received",
        "person",
        "P0001",
        "pending",
        0,
    )
    assert "黄秀兰" in row.body and "另一人" not in row.body
    assert row.subject.startswith("长期护理保险待遇申请受理通知")


def test_enqueue_rolls_back_with_the_callers_transaction(db: Path) -> None:
    with pytest.raises(RuntimeError), session_scope() as s:
        enqueue(
            s,
            kind="application_received",
            recipient_type="person",
            recipient_id="P0001",
            url=get_settings().default_notify_url,
            language="zh_CN",
            dedupe_key="received:NN-2024-000123",
            context=contexts()["application_received"],
        )
        raise RuntimeError("the decision failed")
    assert notices() == []


def test_delivery_url() -> None:
    assert delivery_url("outbox://localhost/tmp/o", 7, "monthly_statement", "P1") == (
        "outbox://localhost/tmp/o?name=7-monthly_statement-P1.txt"
    )
    assert (
        delivery_url("outbox://localhost/tmp/o?x=1", 7, "k", "P/1") == "outbox://localhost/tmp/o?x=1&name=7-k-P%2F1.txt"
    )
    assert delivery_url("json://127.0.0.1:9/x", 7, "k", "P1") == "json://127.0.0.1:9/x"


def test_deliver_to_the_file_outbox(db: Path) -> None:
    settings = get_settings()
    add_notice(settings.default_notify_url)
    assert deliver_pending() == {"sent": 1, "failed": 0, "pending": 0}

    (row,) = notices()
    assert row.status == "sent" and row.attempts == 0 and row.last_error is None
    assert row.sent_at is not None
    path = settings.outbox_dir / f"{row.id}-eligibility_decision-P0001.txt"
    text = path.read_text(encoding="utf-8")
    assert text == f"{row.subject}\n\n{row.body.rstrip()}\n\n通知编号：{row.id}（查重键：{row.dedupe_key}）\n"
    assert text.startswith("长期护理保险待遇不予核准通知（申请编号：NN-2024-000123）\n\n黄秀兰（公民身份号码：")
    assert "南府规〔2023〕26号 三(三)1" in text and MASKED_ID in text and ID_NUMBER not in text
    assert [p.name for p in settings.outbox_dir.iterdir()] == [path.name]

    # Sent notices are not sent again.
    assert deliver_pending() == {"sent": 0, "failed": 0, "pending": 0}


def test_outbox_url_with_a_space_in_its_directory(db: Path) -> None:
    outbox = db / "out box"
    add_notice(f"outbox://localhost{outbox}")
    assert deliver_pending()["sent"] == 1
    assert len(list(outbox.glob("*-eligibility_decision-P0001.txt"))) == 1


def test_unreachable_url_fails_after_five_attempts(db: Path) -> None:
    add_notice("json://127.0.0.1:9/x", dedupe_key="unreachable")
    add_notice(get_settings().default_notify_url, dedupe_key="fine")

    t0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    assert deliver_pending(now=t0) == {"sent": 1, "failed": 1, "pending": 1}
    bad, good = notices()
    assert good.status == "sent"
    assert (bad.status, bad.attempts, bad.sent_at) == ("pending", 1, None)
    assert bad.last_error

    # It waits out its backoff (60 s, then 120 s, 240 s, ...) before it is tried again.
    t = t0
    for attempt in range(2, 5):
        wait = retry_delay(attempt - 1)
        assert wait == dt.timedelta(seconds=60 * 2 ** (attempt - 2))
        assert deliver_pending(now=t + wait - dt.timedelta(seconds=1)) == {"sent": 0, "failed": 0, "pending": 1}
        t = t + wait
        assert deliver_pending(now=t) == {"sent": 0, "failed": 1, "pending": 1}
        (bad, _) = notices()
        assert (bad.status, bad.attempts) == ("pending", attempt)
        assert bad.next_attempt_at is not None

    t = t + retry_delay(4)
    assert deliver_pending(now=t) == {"sent": 0, "failed": 1, "pending": 0}
    (bad, _) = notices()
    assert (bad.status, bad.attempts, bad.sent_at, bad.next_attempt_at) == ("failed", 5, None, None)

    # A failed notice is not tried again.
    assert deliver_pending(now=t + dt.timedelta(days=30)) == {"sent": 0, "failed": 0, "pending": 0}
    (bad, _) = notices()
    assert bad.attempts == 5


def test_invalid_url_is_a_failure(db: Path) -> None:
    add_notice("nosuchscheme://whatever")
    assert deliver_pending() == {"sent": 0, "failed": 1, "pending": 1}
    (row,) = notices()
    assert row.attempts == 1 and row.status == "pending"
    assert row.last_error and "not supported" in row.last_error


def test_limit_and_order(db: Path) -> None:
    url = get_settings().default_notify_url
    for i in range(3):
        add_notice(url, dedupe_key=f"k{i}")
    assert deliver_pending(limit=2) == {"sent": 2, "failed": 0, "pending": 1}
    assert [r.status for r in notices()] == ["sent", "sent", "pending"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(Notice)) == 3


# --- email, end to end --------------------------------------------------------------------------------------


class Inbox:
    """An aiosmtpd handler that keeps every message it is given."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


def test_deliver_by_email(db: Path, smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    # mailto:// (not mailtos://) is plain SMTP: no TLS, and no login without a user and password.
    add_notice(f"mailto://127.0.0.1:{port}?from=ltc@example.org&to=person@example.org")
    assert deliver_pending() == {"sent": 1, "failed": 0, "pending": 0}

    (row,) = notices()
    assert row.status == "sent"
    (message,) = inbox.messages
    assert inbox.recipients == [["person@example.org"]]
    assert message["subject"] == "长期护理保险待遇不予核准通知（申请编号：NN-2024-000123）"
    assert message["subject"] == row.subject
    assert "ltc@example.org" in message["from"]
    assert message.get_content_type() == "multipart/alternative"
    for kind in ("plain", "html"):  # both parts, each with the clause and the masked ID only
        part = message.get_body(preferencelist=(kind,))
        assert part is not None and part.get_content_type() == f"text/{kind}", kind
        content = part.get_content()
        assert isinstance(content, str)
        assert "南府规〔2023〕26号 三(三)1" in content and "黄秀兰" in content, kind
        assert MASKED_ID in content and ID_NUMBER not in content, kind
        assert f"通知编号：{row.id}" in content, kind
    assert "<p>" in message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["monthly_statement", "remittance_advice", "eligibility_decision"])
@pytest.mark.parametrize("language", ["zh_CN", "en"])
def test_a_notice_under_a_draft_policy_says_so(kind: str, language: str) -> None:
    context = copy.deepcopy(contexts()[kind])
    context["draft"] = True
    _, body = render(kind, language, context)
    assert ("征求意见稿" in body) and (DOCUMENT in body)
    context["draft"] = False
    _, plain = render(kind, language, context)
    assert "征求意见稿" not in plain.replace(DOCUMENT, "")


def test_a_personal_share_is_shown_on_the_statement() -> None:
    context = copy.deepcopy(contexts()["monthly_statement"])
    context["lines"][0]["personal_fen"] = 90000
    _, body = render("monthly_statement", "zh_CN", context)
    assert "个人负担金额：900.00元" in body


def test_smtp_server_down_then_back(db: Path) -> None:
    """The mail server is down: the attempt fails, is counted, and waits its backoff; before the wait is over
    nothing is tried; once the server is back, the next run delivers the notice once."""
    port = free_port()
    add_notice(f"mailto://127.0.0.1:{port}?from=ltc@example.org&to=person@example.org")
    t0 = dt.datetime(2026, 4, 1, 9, 0, tzinfo=dt.UTC)
    assert deliver_pending(now=t0) == {"sent": 0, "failed": 1, "pending": 1}
    (row,) = notices()
    assert (row.status, row.attempts) == ("pending", 1)
    assert row.last_error

    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        assert deliver_pending(now=t0 + retry_delay(1) - dt.timedelta(seconds=1))["sent"] == 0  # still waiting
        assert inbox.messages == []
        assert deliver_pending(now=t0 + retry_delay(1)) == {"sent": 1, "failed": 0, "pending": 0}
        assert deliver_pending(now=t0 + retry_delay(2)) == {"sent": 0, "failed": 0, "pending": 0}
    finally:
        controller.stop()
    (row,) = notices()
    assert (row.status, row.attempts) == ("sent", 1)
    (message,) = inbox.messages  # delivered once
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    assert f"通知编号：{row.id}" in str(part.get_content())


def test_a_template_with_a_missing_field_quarantines_the_notice_not_the_decision(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A template asks for a field its context lacks: the notice is kept as quarantined (never sent blank), the
    transaction that wrote it commits, and once the template is fixed it is rendered again and sent."""
    import shutil

    from storage.models import AuditEntry
    from tasks import audit
    from tasks import notices as n

    templates = db / "templates"
    shutil.copytree(n.TEMPLATES, templates)
    good = (templates / "zh_CN" / "eligibility_decision.txt.j2").read_text(encoding="utf-8")
    (templates / "zh_CN" / "eligibility_decision.txt.j2").write_text(good + "{{ appeal_office }}\n", encoding="utf-8")
    monkeypatch.setattr(n, "TEMPLATES", templates)
    n.environment.cache_clear()
    try:
        with session_scope() as s:
            audit.record(s, "decision", "NN-2024-000123", {"approved": False})  # the decision's own write
            n.enqueue(
                s,
                kind="eligibility_decision",
                recipient_type="person",
                recipient_id="P0001",
                url=get_settings().default_notify_url,
                language="zh_CN",
                dedupe_key="decision:NN-2024-000123",
                context=contexts()["eligibility_decision"],
            )
        (row,) = notices()
        assert row.status == "quarantined" and row.body == "" and "appeal_office" in (row.last_error or "")
        assert row.context is not None and row.context["id_number"] == MASKED_ID  # kept masked, never in clear
        with session_scope() as s:
            assert s.scalar(select(func.count()).select_from(AuditEntry)) == 1  # the decision committed
        assert deliver_pending() == {"sent": 0, "failed": 0, "pending": 0}  # nothing sent blank

        assert n.render_quarantined() == {"released": 0, "quarantined": 1}  # not fixed yet
        (templates / "zh_CN" / "eligibility_decision.txt.j2").write_text(good, encoding="utf-8")
        n.environment.cache_clear()
        assert n.render_quarantined() == {"released": 1, "quarantined": 0}
        assert deliver_pending() == {"sent": 1, "failed": 0, "pending": 0}
        (row,) = notices()
        assert row.status == "sent" and row.context is None
        assert "黄秀兰" in row.body and MASKED_ID in row.body and "2024" in row.subject + row.body
    finally:
        n.environment.cache_clear()


class _Hook:
    """A provider's system on loopback that takes JSON webhooks."""

    def __init__(self) -> None:
        import http.server
        import json
        import threading

        received: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append({"path": self.path, **json.loads(self.rfile.read(length))})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.usefixtures("prefect_server")
def test_channels_named_by_secret_deliver_json_webhooks(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A recipient's channel can name a secret (`env:NAME`, `block:NAME`) instead of holding a URL with its
    token: the record keeps the name, the URL is read when the notice is sent."""
    from prefect.blocks.system import Secret

    hook = _Hook()
    try:
        add_notice("env:LTC_HOOK_H001", dedupe_key="a")
        assert deliver_pending()["failed"] == 1  # the variable is not set yet
        (row,) = notices()
        assert row.last_error == "environment variable LTC_HOOK_H001 is not set"
        monkeypatch.setenv("LTC_HOOK_H001", f"json://127.0.0.1:{hook.port}/ltc/notices")
        assert deliver_pending(now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))["sent"] == 1

        Secret(value=f"json://127.0.0.1:{hook.port}/from-block").save("hook-h002", overwrite=True)
        add_notice("block:hook-h002", dedupe_key="b")
        assert deliver_pending()["sent"] == 1
    finally:
        hook.close()
    assert [r["path"] for r in hook.received] == ["/ltc/notices", "/from-block"]
    for r in hook.received:
        assert r["title"].startswith("长期护理保险待遇不予核准通知") and MASKED_ID in r["message"]
        assert ID_NUMBER not in r["message"]
    assert all("json://" not in (n.url + (n.last_error or "")) for n in notices())  # no URL in the record


@pytest.mark.parametrize(
    "url", ["wecombot://BOTKEY", "dingtalk://ACCESSTOKEN/", "dingtalk://SECRET@ACCESSTOKEN/", "json://host/path"]
)
def test_documented_channel_url_forms_are_accepted(url: str) -> None:
    import apprise

    assert apprise.Apprise().add(url), url


def test_a_decision_says_its_waiting_period_and_the_years_it_counted() -> None:
    """Jilin 二(六)3: a re-enrolment after a 6-year lapse, every year paid back, waits at least 360 days."""
    counted = {
        "waiting": {"days": 360, "from": dt.date(2033, 1, 1), "lapsed_years": 6, "repaid_years": 6},
        "continuous_years": 0,
    }
    context = contexts()["eligibility_decision"] | APPROVED | {"counted": counted}
    _, zh = render("eligibility_decision", "zh_CN", context)
    assert "待遇等待期：360天，自2033年1月1日起计算（断保6年，已补缴6年）。" in zh
    assert "连续参保年数：0年。" in zh
    _, en = render("eligibility_decision", "en", context)
    assert "Waiting period: 360 days" in en and "Continuous years insured: 0." in en
    _, none = render("eligibility_decision", "zh_CN", context | {"counted": None})
    assert "等待期" not in none and "连续参保" not in none
