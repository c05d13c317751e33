"""The orchestrator's access-control tables: who may call it and how much they may store
(gateways' enrollment and credentials, their daily usage, console operators and their
sessions). The other tables are in cloud_orchestrator/storage/models.py, on the same
``Base``; cloud_orchestrator/storage/db.py imports both before creating the schema.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from cloud_orchestrator.storage.models import Base

__all__ = ["EnrollmentToken", "GatewayIdentity", "GatewayUsage", "Operator", "OperatorSession"]


class EnrollmentToken(Base):
    """What an operator hands to gateways so they may enroll (cloud_orchestrator/fleet/
    identity.py); only the token's sha256 is kept."""

    __tablename__ = "enrollment_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    one_time: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_admit: Mapped[bool] = mapped_column(Boolean, default=False)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    uses: Mapped[int] = mapped_column(Integer, default=0)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float)


class GatewayIdentity(Base):
    """A pull gateway's own credential (the sha256 of its secret) and its admission."""

    __tablename__ = "gateway_identities"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    secret_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16))  # PENDING ADMITTED REJECTED REVOKED
    enrollment_token_id: Mapped[str] = mapped_column(String(32), default="")
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the token's
    enrolled_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)


class GatewayUsage(Base):
    """What a gateway stored per UTC day, against its quotas (results bytes, events)."""

    __tablename__ = "gateway_usage"

    gateway_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    day: Mapped[int] = mapped_column(Integer, primary_key=True)  # UNIX time // 86400
    result_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    events: Mapped[int] = mapped_column(BigInteger, default=0)


class Operator(Base):
    """A person or script allowed into the console and its JSON API (cloud_orchestrator/
    console/operators.py); only the token's sha256 is kept."""

    __tablename__ = "operators"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | read-only
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[float] = mapped_column(Float)


class OperatorSession(Base):
    """A console login: the sha256 of the session cookie and the CSRF token of its forms."""

    __tablename__ = "operator_sessions"

    id_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator: Mapped[str] = mapped_column(String(64), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
