"""Spent usage credits: the 429 a subscription gets once the credit its requests draw on is
used up and no paid usage may take over.

The shapes follow what Claude Code 2.1.330 reads (its minified bundle, not a public spec):

- account-wide: `anthropic-ratelimit-unified-status: rejected` with the usage-credit lane
  named `overage` as the representative claim, `-overage-status: rejected` and
  `-overage-disabled-reason` (e.g. `out_of_credits`); the refresh time, when the service
  knows it, in `-unified-reset` and `-overage-reset` (epoch seconds) and `retry-after`;
- one model only: the same lane headers without a claim, and an error body whose
  `error.details` carries `error_code: credits_required` and `disabled_reason`: the CLI
  tells "this model needs credits" apart from "the account is out" by that body.

An API key (prepaid API credits, no plan) whose balance is spent gets instead a 400
`invalid_request_error` with the API's "credit balance is too low" text, which the bundle
matches by its words; there are no rate-limit headers and no refresh time.

Pure: the HTTP layer calls these with the request's model and the clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headroom_dev.sandbox.windows import UNIFIED, Window, seconds_until, unified_headers

REASONS = (
    "out_of_credits",
    "org_level_disabled",
    "seat_tier_level_disabled",
    "seat_tier_zero_credit_limit",
    "member_level_disabled",
    "member_zero_credit_limit",
    "group_zero_credit_limit",
)
ACCOUNT_TEXT = "This request would exceed your account's rate limit. Please try again later."
MODEL_TEXT = "This model requires usage credits."
BALANCE_TEXT = (
    "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing"
    " to upgrade or purchase credits."
)


@dataclass
class CreditsSpent:
    resets_at: int | None = None  # None: the answer names no refresh time
    model: str | None = None  # only requests whose model contains this are refused
    reason: str = "out_of_credits"

    def applies(self, model: str) -> bool:
        return self.model is None or self.model in model

    def view(self) -> dict[str, Any]:
        return {"resetsAt": self.resets_at, "model": self.model, "reason": self.reason}


def headers(spent: CreditsSpent, windows: list[Window], now: float) -> dict[str, str]:
    """The plan windows as they stand (none is full) plus the rejected credit lane."""
    found = unified_headers(windows, rejected=None)
    for key in (UNIFIED + "reset", UNIFIED + "representative-claim"):
        found.pop(key, None)
    found[UNIFIED + "status"] = "rejected"
    found[UNIFIED + "overage-status"] = "rejected"
    found[UNIFIED + "overage-disabled-reason"] = spent.reason
    if spent.model is None:
        found[UNIFIED + "representative-claim"] = "overage"
    if spent.resets_at is not None:
        found[UNIFIED + "reset"] = str(spent.resets_at)
        found[UNIFIED + "overage-reset"] = str(spent.resets_at)
        found["retry-after"] = str(seconds_until(spent.resets_at, now))
    return found


def body(spent: CreditsSpent, request_id: str) -> dict[str, Any]:
    error: dict[str, Any] = {"type": "rate_limit_error", "message": ACCOUNT_TEXT}
    if spent.model is not None:
        error["message"] = MODEL_TEXT
        error["details"] = {"error_code": "credits_required", "disabled_reason": spent.reason}
    return {"type": "error", "error": error, "request_id": request_id}


def balance_body(request_id: str) -> dict[str, Any]:
    error = {"type": "invalid_request_error", "message": BALANCE_TEXT}
    return {"type": "error", "error": error, "request_id": request_id}


def parse(doc: dict[str, Any], now: float) -> CreditsSpent:
    """The admin call's body: {resetsAt?, resetInSeconds?, model?, reason?}."""
    resets_at = optional_int(doc, "resetsAt")
    reset_in = optional_int(doc, "resetInSeconds")
    if resets_at is None and reset_in is not None:
        resets_at = int(now) + reset_in
    model = doc.get("model")
    if model is not None and (not isinstance(model, str) or not model):
        raise ValueError("model must be a non-empty string")
    reason = doc.get("reason", "out_of_credits")
    if reason not in REASONS:
        raise ValueError(f"reason must be one of {', '.join(REASONS)}")
    unknown = set(doc) - {"resetsAt", "resetInSeconds", "model", "reason"}
    if unknown:
        raise ValueError(f"unknown keys: {', '.join(sorted(unknown))}")
    return CreditsSpent(resets_at, model, reason)


def optional_int(doc: dict[str, Any], key: str) -> int | None:
    """An optional whole number of an admin request (a JSON number, never a boolean)."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    return int(value)
