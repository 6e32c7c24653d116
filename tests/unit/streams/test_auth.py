"""Token store: hashes only, scopes, rotation and revocation without a restart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.api.auth import TokenError, TokenStore, bearer


def test_only_hashes_are_stored_and_tokens_authenticate(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    token, rec = store.add("manager", departments=["d-2"])
    assert token not in (tmp_path / "tokens.json").read_text()
    assert json.loads((tmp_path / "tokens.json").read_text())["tokens"][0]["hash"] == rec.hash
    p = store.authenticate(token)
    assert p is not None and p.role == "manager" and p.departments == {"d-2"}
    assert p.may_read_department("d-2") and not p.may_read_department("d-3")
    assert p.may_read_employee("e-1", "d-2") and not p.may_read_employee("e-1", "d-3")
    assert store.authenticate(token + "x") is None
    assert store.authenticate("garbage") is None
    assert store.authenticate(None) is None


def test_scopes_of_each_role(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    emp = store.authenticate(store.add("employee", employee_id="e-1")[0])
    ops = store.authenticate(store.add("operations")[0])
    scrape = store.authenticate(store.add("metrics")[0])
    assert emp and ops and scrape
    assert emp.may_read_employee("e-1", "d-1") and not emp.may_read_employee("e-2", "d-1")
    assert not emp.may_read_department("d-1") and not emp.may_scrape()
    assert ops.may_read_employee("e-9", None) and ops.may_read_department("d-9")
    assert scrape.may_scrape() and not scrape.may_read_employee("e-1", "d-1")


def test_revocation_and_a_second_process_see_changes(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    writer, reader = TokenStore(path), TokenStore(path)
    token, rec = writer.add("operations")
    assert reader.authenticate(token) is not None
    writer.revoke(rec.id)
    assert reader.authenticate(token) is None
    new_token, _ = writer.add("operations")  # rotation: a new token works at once
    assert reader.authenticate(new_token) is not None


def test_inconsistent_arguments_are_refused(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    with pytest.raises(TokenError):
        store.add("employee")
    with pytest.raises(TokenError):
        store.add("manager")
    with pytest.raises(TokenError):
        store.add("operations", departments=["d-1"])
    with pytest.raises(TokenError):
        store.revoke("nope")


def test_bearer_header_parsing() -> None:
    assert bearer("Bearer abc") == "abc"
    assert bearer("bearer  abc ") == "abc"
    assert bearer("Basic abc") is None
    assert bearer("Bearer ") is None
    assert bearer(None) is None
