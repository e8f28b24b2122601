"""The canonical store: typed SQLAlchemy 2 models (docs/architecture.md).

An *item* has immutable *revisions*; a *delivery* says "channel C must show revision R of item
I" (or must not show it); every call to a channel is an *attempt* row. Enums are stored by value.
The models live in `base`, `calendar`, `catalog`, `items`, `delivery` and `people`, each
importing only those before it; this package names them all in one place (and so registers
every table).
"""

from publisher.models.base import (
    CLAIMABLE_STATES,
    DEPARTMENT_ROLES,
    SETTLED_STATES,
    WEBSITE_WAIT_SECONDS,
    AttemptOutcome,
    Base,
    DeliveryState,
    ItemStatus,
    Role,
    UTCDateTime,
    WaitReason,
    utcnow,
    value_enum,
)
from publisher.models.calendar import ConfirmedYear, WorkdayOverride
from publisher.models.catalog import (
    DEFAULT_REVIEW_STAGES,
    Department,
    Domain,
    DomainDepartment,
)
from publisher.models.delivery import (
    Attempt,
    AttemptCounter,
    Channel,
    Delivery,
    Drift,
    DriftCheck,
    DriftKind,
    DriftResolution,
    Freeze,
    IndexSerial,
    Media,
    SharedValue,
    WeChatDigest,
    WeChatDigestEntry,
    WeChatDigestState,
)
from publisher.models.items import Item, Revision
from publisher.models.people import (
    ApiToken,
    Approval,
    AuditEvent,
    FindingOverride,
    SensitiveWord,
    User,
    UserDepartment,
)

__all__ = [
    "CLAIMABLE_STATES",
    "DEFAULT_REVIEW_STAGES",
    "DEPARTMENT_ROLES",
    "SETTLED_STATES",
    "WEBSITE_WAIT_SECONDS",
    "ApiToken",
    "Approval",
    "Attempt",
    "AttemptCounter",
    "AttemptOutcome",
    "AuditEvent",
    "Base",
    "Channel",
    "ConfirmedYear",
    "Delivery",
    "DeliveryState",
    "Department",
    "Domain",
    "DomainDepartment",
    "Drift",
    "DriftCheck",
    "DriftKind",
    "DriftResolution",
    "FindingOverride",
    "Freeze",
    "IndexSerial",
    "Item",
    "ItemStatus",
    "Media",
    "Revision",
    "Role",
    "SensitiveWord",
    "SharedValue",
    "UTCDateTime",
    "User",
    "UserDepartment",
    "WaitReason",
    "WeChatDigest",
    "WeChatDigestEntry",
    "WeChatDigestState",
    "WorkdayOverride",
    "utcnow",
    "value_enum",
]
