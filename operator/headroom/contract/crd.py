"""What the CRDs (crds/) fix and the operator's code must agree with: the defaults of spec
fields and the longest values the operator writes to status. Written once here;
tests/contract/test_contract_crd.py reads the CRDs and checks every value against them.

Defaults: the API server fills them in on every write, but the operator still reads objects
stored before a default existed (and bodies built by tests), so the code applies the same.
Caps: one status field over its maxLength or maxItems makes the API server refuse the whole
status write, so every string and list the operator writes is cut to these first.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Final

# -- AgentSession spec defaults ---------------------------------------------------------------
FAILOVER_COOLDOWN: Final = timedelta(minutes=5)  # spec.failover.cooldown: "5m"
FAILOVER_CONFIRMATIONS: Final = 2  # spec.failover.confirmations
FAILOVER_MAX_SWAPS: Final = 20  # spec.failover.maxSwaps
WORKSPACE_SIZE: Final = "1Gi"  # spec.workspace.size
ACCOUNT_SCOPE: Final = "Namespaced"  # spec.accountScope and spec.fallback.accountScope

# -- ClaudeAccount spec defaults --------------------------------------------------------------
ACCOUNT_MAX_SESSIONS: Final = 1
ACCOUNT_PRIORITY: Final = 0
ACCOUNT_PAUSED: Final = False

# -- caps of status strings (characters) ------------------------------------------------------
# conditions[].message: the CRD allows 32768, but a condition is read in `kubectl describe`
# and `get -o wide`; the full story is in the Events.
CONDITION_MESSAGE_CHARS: Final = 1024
# lastOutcome.detail, result.detail and pendingMove.message.
DETAIL_CHARS: Final = 1024
# waitingMessage: placement's explanation, repeated on every wait; shorter than the CRD's 1024.
WAITING_MESSAGE_CHARS: Final = 512
# A container's waiting message (a bad image, a missing key) quoted in the Ready condition.
START_PROBLEM_CHARS: Final = 512
SUMMARY_CHARS: Final = 4096  # result.summary
# lastOutcome.evidence and an account's lastSignal.evidence: a one-line excerpt.
EVIDENCE_CHARS: Final = 120
# ClaudeAccount status.drill.value holds at most 253 bytes, and the annotation it echoes is
# free text: 63 characters are at most 252 bytes of UTF-8.
DRILL_VALUE_CHARS: Final = 63

# -- caps of status lists (items) -------------------------------------------------------------
SWAP_RECORDS: Final = 20  # status.swaps: the latest swaps
ATTEMPT_RECORDS: Final = 20  # status.attempts: the latest attempts
# ClaudeAccount status.windows: usage windows by name; names are open-ended, the list is not.
WINDOW_RECORDS: Final = 16
# status.modelCredits: one entry per model an account lacks the credits for (maxItems).
MODEL_CREDIT_RECORDS: Final = 16
