"""The operator's Kubernetes client without a server: how answers map to results and errors,
and how every request path is built."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest

from headroom.controllers import peering
from headroom.kube.client import (
    UNREACHABLE,
    Kube,
    KubeConflict,
    KubeError,
    KubeNotFound,
    KubeUnreachable,
    api_path,
    group_path,
)

JSON = dict[str, Any]


@dataclass
class Response:
    status: int
    raw: bytes = b""

    async def read(self) -> bytes:
        return self.raw

    def release(self) -> None:
        pass


def status_body(code: int, reason: str, message: str) -> bytes:
    """A metav1.Status, as the API server answers a failed call."""
    doc = {"kind": "Status", "code": code, "reason": reason, "message": message}
    return json.dumps(doc).encode()


@dataclass
class Api:
    """Stands in for the transport: answers each call with the next item of `answers` (a
    Response, or an exception to raise) and records (method, path)."""

    answers: list[Response | BaseException] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)

    async def call_api(self, path: str, method: str, **_: Any) -> Response:
        self.calls.append((method, path))
        answer = self.answers.pop(0) if self.answers else Response(200, b"{}")
        if isinstance(answer, BaseException):
            raise answer
        return answer

    async def close(self) -> None:
        pass


def kube(*answers: Response | BaseException) -> tuple[Kube, Api]:
    api = Api(list(answers))
    return Kube(api), api


# --- status codes ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_a_missing_object_reads_and_deletes_as_none(method: str) -> None:
    k, _ = kube(Response(404, status_body(404, "NotFound", "pods x not found")))
    assert await k.request(method, "/api/v1/namespaces/a/pods/x") is None


@pytest.mark.parametrize("method", ["PATCH", "POST", "PUT"])
async def test_404_of_a_write_is_kube_not_found(method: str) -> None:
    k, _ = kube(Response(404, status_body(404, "NotFound", 'namespaces "a" not found')))
    with pytest.raises(KubeNotFound) as caught:
        await k.request(method, "/api/v1/namespaces/a/pods", {})
    assert (caught.value.status, caught.value.reason) == (404, "NotFound")
    assert caught.value.message == 'namespaces "a" not found'


@pytest.mark.parametrize("method", ["GET", "PATCH", "POST", "DELETE"])
async def test_409_is_kube_conflict(method: str) -> None:
    k, _ = kube(Response(409, status_body(409, "AlreadyExists", 'pods "x" already exists')))
    with pytest.raises(KubeConflict) as caught:
        await k.request(method, "/api/v1/namespaces/a/pods")
    assert (caught.value.status, caught.value.reason) == (409, "AlreadyExists")


@pytest.mark.parametrize("code", [400, 403, 410, 422, 500, 503])
async def test_other_failures_are_plain_kube_errors(code: int) -> None:
    k, _ = kube(Response(code, status_body(code, "Invalid", "spec.x: Invalid value")))
    with pytest.raises(KubeError) as caught:
        await k.request("PATCH", "/api/v1/namespaces/a/pods/x", {})
    assert type(caught.value) is KubeError
    assert (caught.value.status, caught.value.message) == (code, "spec.x: Invalid value")


@pytest.mark.parametrize("raw", [b"<html>bad gateway</html>", b"[1, 2]", b""])
async def test_an_answer_that_is_no_status_object_keeps_its_text(raw: bytes) -> None:
    k, _ = kube(Response(409, raw))
    with pytest.raises(KubeConflict) as caught:
        await k.request("POST", "/api/v1/namespaces/a/pods", {})
    assert caught.value.message == raw.decode()[:200]
    assert caught.value.reason == ""


@pytest.mark.parametrize(
    "problem",
    [
        aiohttp.ClientConnectionError("connection refused"),
        TimeoutError(),
        ConnectionResetError("reset by peer"),
    ],
)
async def test_no_answer_at_all_is_kube_unreachable(problem: BaseException) -> None:
    k, _ = kube(problem)
    with pytest.raises(KubeUnreachable) as caught:
        await k.get_session("a", "s1")
    assert (caught.value.status, caught.value.reason) == (0, UNREACHABLE)
    assert "could not be reached" in caught.value.message
    assert isinstance(caught.value, KubeError)  # callers that retry any API error retry it


async def test_success_decodes_the_body() -> None:
    k, _ = kube(Response(200, b'{"metadata": {"name": "x"}}'), Response(200))
    assert await k.request("GET", "/api/v1/namespaces/a/pods/x") == {"metadata": {"name": "x"}}
    assert await k.request("DELETE", "/api/v1/namespaces/a/pods/x") == {}


# --- what the helpers make of those errors ------------------------------------------------


async def test_create_of_an_existing_object_is_false() -> None:
    k, _ = kube(Response(201), Response(409, status_body(409, "AlreadyExists", "exists")))
    assert await k.create("a", "pods", {"metadata": {"name": "x"}}) is True
    assert await k.create("a", "pods", {"metadata": {"name": "x"}}) is False


async def test_replace_or_create_patches_what_exists() -> None:
    k, api = kube(Response(409, status_body(409, "AlreadyExists", "exists")), Response(200))
    await k.replace_or_create("a", "secrets", {"metadata": {"name": "alice-runtime"}})
    assert api.calls == [
        ("POST", "/api/v1/namespaces/a/secrets"),
        ("PATCH", "/api/v1/namespaces/a/secrets/alice-runtime"),
    ]


async def test_a_status_write_to_a_deleted_object_is_none() -> None:
    k, _ = kube(Response(404, status_body(404, "NotFound", "gone")))
    assert await k.patch_session_status("a", "s1", {"phase": "Running"}) is None


async def test_a_status_write_that_conflicts_is_raised() -> None:
    k, _ = kube(Response(409, status_body(409, "Conflict", "the object has been modified")))
    with pytest.raises(KubeConflict):
        await k.patch_account_status("a", "alice", {"phase": "Available"})


async def test_an_existing_peering_object_is_not_created_again() -> None:
    k, api = kube(Response(409, status_body(409, "AlreadyExists", "exists")), Response(201))
    assert await k.ensure_peering("a", "headroom") is False
    assert await k.ensure_peering(None, "headroom") is True
    assert api.calls == [
        ("POST", "/apis/kopf.dev/v1/namespaces/a/kopfpeerings"),
        ("POST", "/apis/kopf.dev/v1/clusterkopfpeerings"),
    ]


async def test_a_failed_peering_creation_names_the_status() -> None:
    discovery = json.dumps({"resources": [{"name": "kopfpeerings"}]}).encode()
    k, _ = kube(Response(200, discovery), Response(403, status_body(403, "Forbidden", "no")))
    with pytest.raises(peering.PeeringUnavailable, match="403 Forbidden: no"):
        await peering.prepare(k, "headroom", ["a"], clusterwide=False)


# --- paths ---------------------------------------------------------------------------------


def test_paths_of_each_api_group_and_scope() -> None:
    assert group_path("v1") == "/api/v1"
    assert group_path("kopf.dev/v1") == "/apis/kopf.dev/v1"
    assert api_path("v1", "pods", "a") == "/api/v1/namespaces/a/pods"
    assert api_path("v1", "pods") == "/api/v1/pods"
    assert (
        api_path("headroom.dev/v1alpha1", "claudeaccounts", "a", "alice", "status")
        == "/apis/headroom.dev/v1alpha1/namespaces/a/claudeaccounts/alice/status"
    )
    assert api_path("kopf.dev/v1", "clusterkopfpeerings", None, "p") == (
        "/apis/kopf.dev/v1/clusterkopfpeerings/p"
    )


def test_every_segment_is_quoted() -> None:
    # A name the API server would refuse must still not address another object or add a query.
    path = api_path("v1", "pods", "a/b", "x/../y?watch=1#f")
    assert path == "/api/v1/namespaces/a%2Fb/pods/x%2F..%2Fy%3Fwatch%3D1%23f"
    assert peering.peering_path("p/q", "a") == "/apis/kopf.dev/v1/namespaces/a/kopfpeerings/p%2Fq"


async def test_every_method_builds_its_path_with_the_helper() -> None:
    k, api = kube(*[Response(200) for _ in range(11)])
    odd = "a b/c"  # a space and a slash: both quoted wherever they appear
    await k.get_session(odd, odd)
    await k.patch_session_status(odd, odd, {})
    await k.delete_session(odd, odd)
    await k.get_account(odd, odd)
    await k.patch_account_status(odd, odd, {})
    await k.get(odd, "pods", odd)
    await k.list(odd, "pods", "x=y")
    await k.create(odd, "pods", {"metadata": {"name": odd}})
    await k.patch(odd, "pods", odd, {})
    await k.delete(odd, "pods", odd)
    await k.ensure_peering(odd, odd)
    q = "a%20b%2Fc"
    custom = "/apis/headroom.dev/v1alpha1/namespaces"
    assert api.calls == [
        ("GET", f"{custom}/{q}/agentsessions/{q}"),
        ("PATCH", f"{custom}/{q}/agentsessions/{q}/status"),
        ("DELETE", f"{custom}/{q}/agentsessions/{q}"),
        ("GET", f"{custom}/{q}/claudeaccounts/{q}"),
        ("PATCH", f"{custom}/{q}/claudeaccounts/{q}/status"),
        ("GET", f"/api/v1/namespaces/{q}/pods/{q}"),
        ("GET", f"/api/v1/namespaces/{q}/pods"),
        ("POST", f"/api/v1/namespaces/{q}/pods"),
        ("PATCH", f"/api/v1/namespaces/{q}/pods/{q}"),
        ("DELETE", f"/api/v1/namespaces/{q}/pods/{q}"),
        ("POST", f"/apis/kopf.dev/v1/namespaces/{q}/kopfpeerings"),
    ]
