"""Tests for instructgpt.data.pii: each kind in Chinese and English context, and look-alikes left alone."""

from __future__ import annotations

from collections import Counter

import pytest

from instructgpt.data.pii import PII_KINDS, scrub_pii


@pytest.mark.parametrize(
    ("text", "scrubbed", "kind"),
    [
        # e-mail
        ("请联系zhangsan@example.com获取资料。", "请联系<EMAIL>获取资料。", "email"),
        ("Write to john.doe+news@mail.co.uk.", "Write to <EMAIL>.", "email"),
        ("邮箱：info@www.example.com", "邮箱：<EMAIL>", "email"),
        # URL
        ("访问https://www.example.com/path?a=1&b=2获取更多", "访问<URL>获取更多", "url"),
        ("See www.example.org/docs, or HTTP://x.io.", "See <URL>, or <URL>.", "url"),
        ("(details at https://example.com/a/b)", "(details at <URL>)", "url"),
        # Chinese mobile and landline
        ("电话：13812345678，欢迎来电", "电话：<PHONE>，欢迎来电", "phone"),
        ("手机 +86 138-1234-5678 或 86 139 8765 4321", "手机 <PHONE> 或 <PHONE>", "phone"),
        ("座机010-62751234，传真(0755)8888 6666", "座机<PHONE>，传真<PHONE>", "phone"),
        # international / North American
        ("Call +1 (555) 123-4567 today.", "Call <PHONE> today.", "phone"),
        ("Office: 555-123-4567 or 555.123.4567", "Office: <PHONE> or <PHONE>", "phone"),
        ("London +44 20 7946 0958.", "London <PHONE>.", "phone"),
        # Chinese resident ID (check digit X) and legacy 15-digit form; US SSN
        ("身份证号11010519491231002X已登记", "身份证号<ID>已登记", "id_card"),
        ("ID: 11010519491231002x", "ID: <ID>", "id_card"),
        ("旧身份证 110105491231002 作废", "旧身份证 <ID> 作废", "id_card"),
        ("SSN 123-45-6789 on file", "SSN <ID> on file", "id_card"),
        # IPv4
        ("服务器192.168.1.1宕机了", "服务器<IP>宕机了", "ip"),
        ("ping 10.0.0.255.", "ping <IP>.", "ip"),
    ],
)
def test_scrubs_each_kind(text: str, scrubbed: str, kind: str) -> None:
    out, counts = scrub_pii(text, PII_KINDS)
    assert out == scrubbed
    assert counts == Counter({kind: scrubbed.count(f"<{'ID' if kind == 'id_card' else kind.upper()}>")})


@pytest.mark.parametrize(
    "text",
    [
        "2024年营收1,234,567元，同比增长+12.5%。",
        "Released on 2024-05-01 at 12:30:45, version 1.2.3 (build 10.0.19045).",
        "The price is $19.99, down from $1,299.00; 3.14159265358979.",
        "编号12345678901，订单20240501123，共13,812,345人。",  # 11-digit numbers that are not mobiles
        "ID 11010519491231002Y has a wrong check digit",
        "11010519491231002 and 110105499931002",  # too short / impossible birth date
        "110105209912310029",  # valid check digit, but born in 2099
        "ISBN 978-7-115-12345-6, page 123, 1999-2001, 000-12-3456",
        "Contact us by email or phone.",
    ],
)
def test_leaves_look_alikes_alone(text: str) -> None:
    assert scrub_pii(text, PII_KINDS) == (text, Counter())


def test_url_with_an_ip_or_email_is_one_url() -> None:
    text = "打开 http://192.168.1.1/admin?user=a@b.com 登录"
    assert scrub_pii(text, PII_KINDS) == ("打开 <URL> 登录", Counter({"url": 1}))
    assert scrub_pii(text, ["ip"]) == ("打开 http://<IP>/admin?user=a@b.com 登录", Counter({"ip": 1}))


def test_only_requested_kinds_are_scrubbed() -> None:
    text = "Mail a@b.com or call 13812345678 from 10.1.2.3."
    assert scrub_pii(text, ["email"]) == ("Mail <EMAIL> or call 13812345678 from 10.1.2.3.", Counter(email=1))
    assert scrub_pii(text, []) == (text, Counter())
    assert scrub_pii(text, PII_KINDS) == (
        "Mail <EMAIL> or call <PHONE> from <IP>.",
        Counter(email=1, phone=1, ip=1),
    )


def test_unknown_kind_is_an_error_naming_the_allowed_kinds() -> None:
    with pytest.raises(
        ValueError, match=r"unknown PII kind 'emails'; expected some of email, phone, id_card"
    ):
        scrub_pii("x", ["email", "emails"])
