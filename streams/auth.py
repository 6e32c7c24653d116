"""Bearer tokens with scopes: employees see themselves, managers their departments,
operations everyone; a separate scrape role reads /metrics.

Only SHA-256 hashes of tokens are stored (tokens carry 256 random bits, so a slow hash
adds nothing), in a JSON file named by the settings. The file is re-read when it changes,
so adding, rotating or revoking a token takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Role = Literal["employee", "manager", "operations", "metrics"]
ROLES: tuple[Role, ...] = ("employee", "manager", "operations", "metrics")


class TokenError(ValueError):
    """A token command was given inconsistent arguments."""


@dataclass
class TokenRecord:
    id: str
    hash: str
    role: Role
    employee_id: str | None = None
    departments: list[str] = field(default_factory=list)
    label: str = ""
    created_at: str = ""
    revoked_at: str | None = None


@dataclass(frozen=True)
class Principal:
    """Who is asking: the role and the scope it grants."""

    token_id: str
    role: Role
    employee_id: str | None = None
    departments: frozenset[str] = frozenset()

    def may_read_employee(self, employee_id: str, department_id: str | None) -> bool:
        if self.role == "operations":
            return True
        if self.role == "employee":
            return employee_id == self.employee_id
        if self.role == "manager":
            return department_id is not None and department_id in self.departments
        return False

    def may_read_department(self, department_id: str) -> bool:
        if self.role == "operations":
            return True
        return self.role == "manager" and department_id in self.departments

    def may_read_tickets(self) -> bool:
        return self.role in ("operations", "manager")

    def may_scrape(self) -> bool:
        return self.role in ("metrics", "operations")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens file: create, list, revoke, and authenticate (constant-time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int] | None = None
        self._records: dict[str, TokenRecord] = {}

    def _load(self) -> dict[str, TokenRecord]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = {}, None
            return self._records
        # Every save replaces the file (new inode), so this notices each change.
        stamp = (st.st_mtime_ns, st.st_ino)
        if stamp != self._stamp:
            data = json.loads(self.path.read_text() or "{}")
            self._records = {r["id"]: TokenRecord(**r) for r in data.get("tokens", [])}
            self._stamp = stamp
        return self._records

    def _save(self, records: dict[str, TokenRecord]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"tokens": [asdict(r) for r in records.values()]}, indent=2))
        os.chmod(tmp, 0o600)
        tmp.replace(self.path)  # atomic: a worker never reads half a file
        self._stamp = None

    def add(self, role: Role, *, employee_id: str | None = None,
            departments: list[str] | None = None, label: str = "") -> tuple[str, TokenRecord]:
        """Create a token; returns (the token, shown once, and its record)."""
        departments = departments or []
        if role == "employee" and not employee_id:
            raise TokenError("--role employee needs --employee")
        if role == "manager" and not departments:
            raise TokenError("--role manager needs at least one --department")
        if role != "employee" and employee_id:
            raise TokenError("--employee only applies to --role employee")
        if role != "manager" and departments:
            raise TokenError("--department only applies to --role manager")
        with self._lock:
            records = dict(self._load())
            token_id = secrets.token_hex(4)
            while token_id in records:
                token_id = secrets.token_hex(4)
            token = f"kpi_{token_id}_{secrets.token_urlsafe(32)}"
            rec = TokenRecord(token_id, _hash(token), role, employee_id, sorted(departments),
                              label, datetime.now(UTC).isoformat(timespec="seconds"))
            records[token_id] = rec
            self._save(records)
            return token, rec

    def revoke(self, token_id: str) -> TokenRecord:
        with self._lock:
            records = dict(self._load())
            rec = records.get(token_id)
            if rec is None:
                raise TokenError(f"no token with id {token_id!r}")
            rec.revoked_at = rec.revoked_at or datetime.now(UTC).isoformat(timespec="seconds")
            self._save(records)
            return rec

    def list(self) -> list[TokenRecord]:
        with self._lock:
            return sorted(self._load().values(), key=lambda r: r.created_at)

    def authenticate(self, token: str | None) -> Principal | None:
        """The principal of a valid, unrevoked token; None otherwise."""
        if not token or len(token) > 200:
            return None
        parts = token.split("_", 2)
        token_id = parts[1] if len(parts) == 3 and parts[0] == "kpi" else ""
        with self._lock:
            rec = self._load().get(token_id)
        # Compare against a dummy hash when the id is unknown, so timing does not tell
        # whether an id exists.
        expected = rec.hash if rec is not None else _hash("kpi_unknown")
        if not hmac.compare_digest(expected, _hash(token)) or rec is None or rec.revoked_at:
            return None
        return Principal(rec.id, rec.role, rec.employee_id, frozenset(rec.departments))


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None
