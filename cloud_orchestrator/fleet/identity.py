"""Who a pull gateway is: enrollment tokens, per-gateway secrets and admission.

An operator creates enrollment tokens (fleet-wide or one-time, optionally admitting new
gateways at once, optionally carrying labels). A gateway presents one with the id it
wants (``Enroll``) and receives a random secret bound to that id; only the secret's
sha256 is stored, so the database never holds a usable credential. Every other call
carries the secret, and ``admitted_as`` (on what ``lookup`` found for it; batched by
grpc/credential_checks.py) checks that it names the gateway id of the call and that the
gateway is admitted.

States: PENDING (enrolled, awaits ``gateways admit``), ADMITTED, REJECTED, REVOKED (its
secret stops working at its next call). An enrolled id cannot enroll again until an
operator ``forget``s it (``gateways remove``), so holding an enrollment token never lets
a board take over an id that is in use.

Two compatibility rules (docs/orchestrator.md, "Gateway identity"): the fleet token of
``serve --gateway-token-file`` is accepted as a fleet-wide enrollment token that admits
at once; and an orchestrator with neither that token nor any enrollment token lets a
gateway enroll without one (open enrollment, as open as the service was before).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Collection, Mapping

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from cloud_orchestrator.errors import (
    Conflict,
    CredentialRefused,
    InvalidRequest,
    LimitReached,
    NotFound,
    Unauthenticated,
)
from cloud_orchestrator.fleet.identity_records import (
    Enrolled,
    Grant,
    IdentityInfo,
    NewToken,
    TokenInfo,
)
from cloud_orchestrator.fleet.store import _ID_RE as GATEWAY_ID  # the fleet's id pattern
from cloud_orchestrator.storage.access_models import EnrollmentToken, GatewayIdentity
from cloud_orchestrator.storage.db import Database

__all__ = [
    "ADMITTED",
    "PENDING",
    "REJECTED",
    "REVOKED",
    "Enrolled",
    "Grant",
    "Identities",
    "IdentityInfo",
    "NewToken",
    "TokenInfo",
    "admitted_as",
    "check_gateway_id",
]

PENDING, ADMITTED, REJECTED, REVOKED = "PENDING", "ADMITTED", "REJECTED", "REVOKED"
FLEET_TOKEN_ID = "fleet-token"  # serve --gateway-token-file, as an enrollment token
OPEN_ID = "open"  # enrolled without a token on an orchestrator that has none
SECRET_BYTES = 32
MAX_PENDING = 1000  # pending gateways at once: enrollment floods stop here
MAX_TOKEN_LABELS = 32


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def secret_digest(secret: str) -> str:
    """What is stored of a gateway secret (and compared against): its sha256."""
    return _sha256(secret)


def check_gateway_id(gateway_id: str) -> None:
    if not GATEWAY_ID.fullmatch(gateway_id):
        shown = (
            gateway_id
            if len(gateway_id) <= 64
            else f"{gateway_id[:64]}... ({len(gateway_id)} chars)"
        )
        raise InvalidRequest(
            f"gateway id {shown!r} must be 1-128 letters, digits, '.', '_', ':' or '-'"
        )


def _token_info(row: EnrollmentToken) -> TokenInfo:
    return TokenInfo(
        row.id,
        row.one_time,
        row.auto_admit,
        {str(k): str(v) for k, v in (row.labels or {}).items()},
        row.uses,
        row.revoked,
        row.created_at,
    )


def _identity_info(row: GatewayIdentity) -> IdentityInfo:
    return IdentityInfo(
        row.gateway_id, row.state, row.enrollment_token_id, row.enrolled_at, row.updated_at
    )


def admitted_as(info: IdentityInfo | None, gateway_id: str | None) -> IdentityInfo:
    """``info`` (what a credential belongs to, None: nothing) if it is an admitted gateway
    and, when given, ``gateway_id`` (the call's own id); the refusal otherwise."""
    if info is None:
        raise Unauthenticated(
            "the credential is not a gateway secret issued here: a gateway enrolls "
            "first (Enroll with an enrollment token) and then sends its own secret"
        )
    if gateway_id is not None and gateway_id != info.gateway_id:
        shown = gateway_id if len(gateway_id) <= 64 else f"{gateway_id[:64]}..."
        raise CredentialRefused(
            f"the credential belongs to gateway {info.gateway_id}, "
            f"not to {shown!r}: a gateway acts only as itself"
        )
    if info.state != ADMITTED:
        raise _refusal(info.gateway_id, info.state)
    return info


def _enrolled_already(gateway_id: str) -> Conflict:
    return Conflict(
        f"gateway id {gateway_id} is enrolled already; to enroll it again (a new board, a "
        f"lost secret) an operator runs `edge-orchestrator gateways remove {gateway_id}`"
    )


def _refusal(gateway_id: str, state: str) -> CredentialRefused:
    if state == PENDING:
        return CredentialRefused(
            f"gateway {gateway_id} is enrolled and awaits admission: an operator runs "
            f"`edge-orchestrator gateways admit {gateway_id}`"
        )
    if state == REJECTED:
        return CredentialRefused(f"gateway {gateway_id} was rejected by an operator")
    return CredentialRefused(
        f"the credential of gateway {gateway_id} was revoked; an operator must "
        f"`edge-orchestrator gateways remove {gateway_id}` before it can enroll again"
    )


class Identities:
    def __init__(self, db: Database, fleet_token: str = "", max_pending: int = MAX_PENDING):
        self.db = db
        self._fleet_token = fleet_token
        self._max_pending = max_pending

    # -- enrollment tokens (operator) -------------------------------------------------------

    def create_token(
        self,
        one_time: bool = False,
        auto_admit: bool = False,
        labels: Mapping[str, str] | None = None,
    ) -> NewToken:
        labels = dict(labels or {})
        if len(labels) > MAX_TOKEN_LABELS:
            raise InvalidRequest(f"at most {MAX_TOKEN_LABELS} labels per enrollment token")
        token = f"edge-enroll-{secrets.token_urlsafe(SECRET_BYTES)}"
        with self.db.session() as session:
            row = EnrollmentToken(
                id=f"et-{secrets.token_hex(4)}",
                token_sha256=_sha256(token),
                one_time=one_time,
                auto_admit=auto_admit,
                labels=labels,
                uses=0,
                revoked=False,
                created_at=time.time(),
            )
            session.add(row)
            info = _token_info(row)
        return NewToken(info, token)

    def tokens(self) -> list[TokenInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(EnrollmentToken).order_by(EnrollmentToken.created_at))
            return [_token_info(row) for row in rows]

    def revoke_token(self, token_id: str) -> None:
        """Gateways enrolled with it keep their own secrets; new enrollments stop."""
        with self.db.session() as session:
            row = session.get(EnrollmentToken, token_id)
            if row is None:
                raise NotFound(
                    f"no enrollment token {token_id!r} "
                    "(`edge-orchestrator enrollment-tokens list` shows them)"
                )
            row.revoked = True

    # -- enrollment (gateway) ---------------------------------------------------------------

    def grant(self, token: str) -> Grant:
        """What ``token`` allows; raises when it allows nothing."""
        if self._fleet_token and hmac.compare_digest(token.encode(), self._fleet_token.encode()):
            return Grant(FLEET_TOKEN_ID, auto_admit=True, labels={})
        with self.db.session() as session:
            if not token:
                if self._fleet_token or session.scalar(select(func.count(EnrollmentToken.id))):
                    raise Unauthenticated(
                        "Enroll needs an enrollment token (edge-server "
                        "--orchestrator-enrollment-token-file; an operator creates one with "
                        "`edge-orchestrator enrollment-tokens create`)"
                    )
                return Grant(OPEN_ID, auto_admit=True, labels={})
            row = session.scalars(
                select(EnrollmentToken).where(EnrollmentToken.token_sha256 == _sha256(token))
            ).first()
            if row is None or row.revoked:
                raise CredentialRefused("the enrollment token is unknown or revoked")
            if row.one_time and row.uses:
                raise CredentialRefused(
                    f"the one-time enrollment token {row.id} was used already; "
                    "an operator creates another with `edge-orchestrator enrollment-tokens create`"
                )
            return Grant(row.id, row.auto_admit, _token_info(row).labels, row.one_time)

    def enroll(self, grant: Grant, gateway_id: str) -> Enrolled:
        """Issue ``gateway_id`` its secret under ``grant`` (from ``grant``)."""
        check_gateway_id(gateway_id)
        secret = f"edge-gw-{secrets.token_urlsafe(SECRET_BYTES)}"
        state = ADMITTED if grant.auto_admit else PENDING
        now = time.time()
        try:
            with self.db.session() as session:
                # The token's use is the transaction's first statement, a conditional
                # write: two boards racing with one one-time token cannot both enroll, and
                # SQLite takes its write lock before anything is read.
                if grant.token_id not in (FLEET_TOKEN_ID, OPEN_ID):
                    used = update(EnrollmentToken).where(
                        EnrollmentToken.id == grant.token_id, EnrollmentToken.revoked.is_(False)
                    )
                    if grant.one_time:
                        used = used.where(EnrollmentToken.uses == 0)
                    result = session.execute(used.values(uses=EnrollmentToken.uses + 1))
                    if not getattr(result, "rowcount", 0):
                        raise CredentialRefused(
                            f"the enrollment token {grant.token_id} is revoked or used up"
                        )
                if session.get(GatewayIdentity, gateway_id) is not None:
                    raise _enrolled_already(gateway_id)
                if state == PENDING:
                    pending = session.scalar(
                        select(func.count()).where(GatewayIdentity.state == PENDING)
                    )
                    if (pending or 0) >= self._max_pending:
                        raise LimitReached(
                            f"{pending} gateways await admission already; admit or reject "
                            "them before more may enroll",
                            60_000,
                        )
                session.add(
                    GatewayIdentity(
                        gateway_id=gateway_id,
                        secret_sha256=_sha256(secret),
                        state=state,
                        enrollment_token_id=grant.token_id,
                        labels=dict(grant.labels),
                        enrolled_at=now,
                        updated_at=now,
                    )
                )
        except IntegrityError:  # the same id enrolled by another call just now
            raise _enrolled_already(gateway_id) from None
        return Enrolled(gateway_id, state, dict(grant.labels), secret)

    # -- every other call -------------------------------------------------------------------

    def lookup(self, digests: Collection[str]) -> dict[str, IdentityInfo]:
        """The identities several secret digests belong to, in one query (the digests
        of calls checked together: grpc/credential_checks.py)."""
        columns = (
            GatewayIdentity.secret_sha256,
            GatewayIdentity.gateway_id,
            GatewayIdentity.state,
            GatewayIdentity.enrollment_token_id,
            GatewayIdentity.enrolled_at,
            GatewayIdentity.updated_at,
        )
        wanted = sorted(set(digests))
        with self.db.session() as session:
            rows = session.execute(
                select(*columns).where(GatewayIdentity.secret_sha256.in_(wanted))
            ).all()
        return {str(row[0]): IdentityInfo(*row[1:]) for row in rows}

    def fingerprint(self) -> tuple[float, int]:
        """Newest change and row count of every identity: one indexed-free aggregate that
        moves with each enrollment, admission, rejection and revocation (``updated_at``),
        so the admitted set is reread only when it can differ."""
        with self.db.session() as session:
            newest, count = session.execute(
                select(func.max(GatewayIdentity.updated_at), func.count())
            ).one()
            return (float(newest or 0.0), int(count or 0))

    def admitted_pairs(self) -> frozenset[tuple[str, str]]:
        """(gateway id, secret digest) of every admitted identity, in one query."""
        with self.db.session() as session:
            rows = session.execute(
                select(GatewayIdentity.gateway_id, GatewayIdentity.secret_sha256).where(
                    GatewayIdentity.state == ADMITTED
                )
            )
            return frozenset((str(gateway_id), str(digest)) for gateway_id, digest in rows)

    # -- admission (operator) ---------------------------------------------------------------

    def identities(self) -> list[IdentityInfo]:
        with self.db.session() as session:
            rows = session.scalars(select(GatewayIdentity).order_by(GatewayIdentity.gateway_id))
            return [_identity_info(row) for row in rows]

    def identity(self, gateway_id: str) -> IdentityInfo:
        with self.db.session() as session:
            row = session.get(GatewayIdentity, gateway_id)
            if row is None:
                raise NotFound(f"gateway {gateway_id!r} has not enrolled")
            return _identity_info(row)

    def token_labels(self, gateway_id: str) -> dict[str, str]:
        with self.db.session() as session:
            row = session.get(GatewayIdentity, gateway_id)
            return {str(k): str(v) for k, v in ((row.labels if row else None) or {}).items()}

    def _move(self, gateway_id: str, allowed: tuple[str, ...], state: str) -> IdentityInfo:
        with self.db.session() as session:
            row = session.get(GatewayIdentity, gateway_id)
            if row is None:
                raise NotFound(
                    f"gateway {gateway_id!r} has not enrolled "
                    "(`edge-orchestrator gateways identities` lists enrolled gateways)"
                )
            if row.state not in allowed:
                raise Conflict(f"gateway {gateway_id} is {row.state}; cannot make it {state}")
            row.state = state
            row.updated_at = time.time()
            return _identity_info(row)

    def admit(self, gateway_id: str) -> IdentityInfo:
        return self._move(gateway_id, (PENDING, REJECTED, ADMITTED), ADMITTED)

    def reject(self, gateway_id: str) -> IdentityInfo:
        return self._move(gateway_id, (PENDING, REJECTED), REJECTED)

    def revoke(self, gateway_id: str) -> IdentityInfo:
        return self._move(gateway_id, (PENDING, ADMITTED, REJECTED, REVOKED), REVOKED)

    def forget(self, gateway_id: str) -> bool:
        """Delete the identity (the id may enroll again); whether there was one."""
        with self.db.session() as session:
            row = session.get(GatewayIdentity, gateway_id)
            if row is None:
                return False
            session.delete(row)
            return True
