"""Webhook authentication, trigger items and answers (pure functions)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import orjson
import pytest

from nodedrop.api.webhooks import AuthFailure, check_auth, finished_answer, trigger_item

BODY = b'{"order": 7}'
NOW = 1_800_000_000.0


def _hex(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


def test_header_token() -> None:
    auth = {"type": "header", "name": "X-Token", "value": "s3cret"}
    check_auth(auth, {"x-token": "s3cret"}, BODY, NOW)
    for headers in ({}, {"x-token": "s3cre"}, {"x-token": "s3cret "}):
        with pytest.raises(AuthFailure):
            check_auth(auth, headers, BODY, NOW)


def test_basic() -> None:
    auth = {"type": "basic", "username": "ann", "password": "pw:with:colons"}
    good = "Basic " + base64.b64encode(b"ann:pw:with:colons").decode()
    check_auth(auth, {"authorization": good}, BODY, NOW)
    bad = "Basic " + base64.b64encode(b"ann:nope").decode()
    for header in (bad, "Basic !!!", "Bearer x", ""):
        with pytest.raises(AuthFailure) as failure:
            check_auth(auth, {"authorization": header}, BODY, NOW)
        assert failure.value.challenge == 'Basic realm="webhook"'


def test_github_style_signature_is_over_the_raw_body() -> None:
    auth = {"type": "hmac", "secret": "k", "header": "X-Hub-Signature-256", "prefix": "sha256="}
    check_auth(auth, {"x-hub-signature-256": "sha256=" + _hex("k", BODY)}, BODY, NOW)
    with pytest.raises(AuthFailure, match="does not match"):
        # Same JSON, other bytes: the signature no longer matches.
        check_auth(auth, {"x-hub-signature-256": "sha256=" + _hex("k", BODY)}, b'{"order":7}', NOW)
    with pytest.raises(AuthFailure, match="start with"):
        check_auth(auth, {"x-hub-signature-256": _hex("k", BODY)}, BODY, NOW)
    with pytest.raises(AuthFailure, match="missing"):
        check_auth(auth, {}, BODY, NOW)


def test_stripe_style_signature_with_timestamp_tolerance() -> None:
    auth = {
        "type": "hmac",
        "secret": "whsec",
        "header": "Stripe-Signature",
        "format": "stripe",
        "tolerance_s": 300,
    }

    def header(stamp: int, secret: str = "whsec") -> dict[str, str]:
        sig = _hex(secret, f"{stamp}.".encode() + BODY)
        return {"stripe-signature": f"t={stamp},v1={'0' * 64},v1={sig}"}

    check_auth(auth, header(int(NOW) - 299), BODY, NOW)
    with pytest.raises(AuthFailure, match="tolerance"):
        check_auth(auth, header(int(NOW) - 301), BODY, NOW)
    with pytest.raises(AuthFailure, match="tolerance"):
        check_auth(auth, header(int(NOW) + 301), BODY, NOW)
    with pytest.raises(AuthFailure, match="does not match"):
        check_auth(auth, header(int(NOW), "other"), BODY, NOW)
    with pytest.raises(AuthFailure, match="malformed"):
        check_auth(auth, {"stripe-signature": "v1=abc"}, BODY, NOW)


def test_trigger_item_bodies_and_dropped_secrets() -> None:
    auth = {"type": "header", "name": "X-Token", "value": "s3cret"}

    def item(content_type: str, body: bytes) -> dict[str, object]:
        headers = [("content-type", content_type), ("x-token", "s3cret"), ("x-other", "1")]
        return trigger_item(
            method="POST", path="p", headers=headers, query="a=1&b=", body=body, auth=auth
        )

    parsed = item("application/json", BODY)
    assert parsed["body"] == {"order": 7}
    assert parsed["query"] == {"a": "1", "b": ""}
    headers = parsed["headers"]
    assert isinstance(headers, dict) and "x-token" not in headers and headers["x-other"] == "1"
    assert item("application/x-www-form-urlencoded", b"a=1&b=two")["body"] == {
        "a": "1",
        "b": "two",
    }
    assert item("text/plain; charset=utf-8", "héllo".encode())["body"] == "héllo"
    binary = item("image/png", b"\x89PNG\x00\xff")
    assert binary["body"] == base64.b64encode(b"\x89PNG\x00\xff").decode()
    assert binary["body_encoding"] == "base64" and binary["content_type"] == "image/png"


def test_finished_answers() -> None:
    respond = orjson.dumps(
        {"main": [{"status": 201, "headers": {"X-Answer": "yes"}, "body": {"ok": True}}]}
    ).decode()
    answer = finished_answer(
        status="completed",
        result_json=None,
        error_json=None,
        respond_outputs_json=respond,
        last_node_id=None,
    )
    assert answer.status == 201 and orjson.loads(answer.body) == {"ok": True}
    assert ("x-answer", "yes") in answer.headers
    last = finished_answer(
        status="completed",
        result_json='{"tag": [{"a": 1}]}',
        error_json=None,
        respond_outputs_json=None,
        last_node_id="tag",
    )
    assert last.status == 200 and orjson.loads(last.body) == [{"a": 1}]
    failed = finished_answer(
        status="failed",
        result_json=None,
        error_json='{"message": "boom"}',
        respond_outputs_json=None,
        last_node_id="tag",
    )
    assert failed.status == 500 and b"boom" in failed.body
