"""Names of the AdminService enums, as the core stores them and the site shows them."""

from __future__ import annotations

from typing import TypeAlias

from claudecode.v1 import admin_pb2

Role: TypeAlias = admin_pb2.UserRole.ValueType
Period: TypeAlias = admin_pb2.BudgetPeriod.ValueType

ROLE_NAMES: dict[Role, str] = {
    admin_pb2.USER_ROLE_ADMIN: "admin",
    admin_pb2.USER_ROLE_VIEWER: "viewer",
}
ROLE_BY_NAME: dict[str, Role] = {name: value for value, name in ROLE_NAMES.items()}

PERIOD_NAMES: dict[Period, str] = {
    admin_pb2.BUDGET_PERIOD_DAY: "day",
    admin_pb2.BUDGET_PERIOD_MONTH: "month",
    admin_pb2.BUDGET_PERIOD_TOTAL: "total",
}
PERIOD_BY_NAME: dict[str, Period] = {name: value for value, name in PERIOD_NAMES.items()}

# OpenAI's reasoning efforts -> the ones Claude Code has. The facade maps what
# a client sends; the core accepts either spelling in `TurnOptions.reasoning_effort`.
REASONING_EFFORTS: dict[str, str] = {
    "none": "low",
    "minimal": "low",
    "low": "low",
    "medium": "medium",
    "high": "high",
    "xhigh": "high",
}
