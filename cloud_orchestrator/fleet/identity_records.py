"""What fleet/identity.py hands out: enrollment tokens, grants and gateway identities,
as plain records (no database rows leave that module)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Enrolled", "Grant", "IdentityInfo", "NewToken", "TokenInfo"]


@dataclass(frozen=True)
class TokenInfo:
    id: str
    one_time: bool
    auto_admit: bool
    labels: dict[str, str]
    uses: int
    revoked: bool
    created_at: float


@dataclass(frozen=True)
class NewToken:
    info: TokenInfo
    token: str = field(repr=False)  # shown once; only its sha256 is stored


@dataclass(frozen=True)
class Grant:
    """What an enrollment token allows (checked before the rate limit is charged)."""

    token_id: str
    auto_admit: bool
    labels: dict[str, str]
    one_time: bool = False


@dataclass(frozen=True)
class Enrolled:
    gateway_id: str
    state: str
    labels: dict[str, str]
    secret: str = field(repr=False)


@dataclass(frozen=True)
class IdentityInfo:
    gateway_id: str
    state: str
    enrollment_token_id: str
    enrolled_at: float
    updated_at: float
