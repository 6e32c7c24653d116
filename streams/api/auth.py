"""Bearer tokens with scopes: employees see themselves and the tickets they take part in,
managers their departments, operations everyone; a separate scrape role reads /metrics.

Only SHA-256 hashes of tokens are stored (tokens carry 256 random bits, so a slow hash
adds nothing), in a JSON file named by the settings. The file is re-read when it changes,
so adding, rotating or revoking a token takes effect without a restart.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

Role = Literal["employee", "manager", "operations", "metrics"]
ROLES: tuple[Role, ...] = ("employee", "manager", "operations", "metrics")
MAX_TOKEN_LENGTH = 200  # ours are 56 characters; anything longer is not worth hashing
# A file changed this recently may change again within the same mtime tick, invisibly to
# the (mtime, ctime, size, inode) stamp: re-read it until it is older than this.
_RACY_NS = 2_000_000_000


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

    def may_read_ticket(self, department_id: str | None,
                        participants: AbstractSet[str] = frozenset()) -> bool:
        """Operations any ticket, a manager those of their departments (the ticket's current
        department), an employee the tickets they take part in: whose current owner they
        are, or that credited them with anything (minutes, a resolution, an escalation
        or reopen counted on them). An employee sees the clocks their own figures come
        from, and nothing of colleagues' tickets; the scrape role sees no ticket."""
        if self.role == "operations":
            return True
        if self.role == "employee":
            return self.employee_id is not None and self.employee_id in participants
        return (self.role == "manager" and department_id is not None
                and department_id in self.departments)

    def may_scrape(self) -> bool:
        return self.role in ("metrics", "operations")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """The tokens file: create, list, revoke, and authenticate (constant-time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int, int] | None = None
        self._records: dict[str, TokenRecord] = {}

    def _load(self) -> dict[str, TokenRecord]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._records, self._stamp = {}, None
            return self._records
        # Every save replaces the file, so mtime, ctime, size or inode changes with it. Inode
        # numbers are reused and mtimes have a coarse tick, so a file written within the
        # last moments is re-read regardless: a revocation must never be missed.
        stamp = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        racy = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _RACY_NS
        if stamp != self._stamp or racy:
            # A malformed file raises: the API answers 500 (fails closed), never serving
            # with a stale or partial set of tokens.
            data = json.loads(self.path.read_text() or "{}")
            self._records = {r["id"]: TokenRecord(**r) for r in data.get("tokens", [])}
            self._stamp = stamp
        return self._records

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Serialise writers across processes (two `kpi tokens add` at once lose nothing)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _save(self, records: dict[str, TokenRecord]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        # Created 0600 from the start: no moment where another user could read the hashes.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # a leftover tmp file keeps its old mode otherwise
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps({"tokens": [asdict(r) for r in records.values()]}, indent=2))
            fh.flush()
            os.fsync(fh.fileno())
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
        with self._exclusive():
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
        with self._exclusive():
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
        # Tokens are ASCII; other text (headers decode with surrogate escapes) cannot match
        # and would not even encode.
        if not token or len(token) > MAX_TOKEN_LENGTH or not token.isascii():
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
