"""The soak's fault proxy: its mix can change while it runs, and it can go away (connection refused) and
come back on the same port, cutting the connections that were open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from s3kp.local.fault_proxy import RESET, THROTTLED, UNAUTHORIZED, FaultMix, FaultProxy

# No request in these tests is forwarded (every one draws a fault), so the upstream is never called.
NOWHERE = "http://127.0.0.1:9"


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    running = FaultProxy(NOWHERE, FaultMix(fault_rate=1.0, faults=(UNAUTHORIZED,))).start()
    yield running
    running.stop()


def post(session: requests.Session, proxy: FaultProxy) -> requests.Response:
    return session.post(f"{proxy.url}/faces/2", data=b"image", timeout=5)


def test_a_401_phase_answers_every_request_as_a_rotated_key_would(proxy: FaultProxy) -> None:
    with requests.Session() as session:
        answers = [post(session, proxy) for _ in range(3)]

    assert [answer.status_code for answer in answers] == [401, 401, 401]
    assert proxy.snapshot() == {UNAUTHORIZED: 3}


def test_a_storm_answers_429_with_its_retry_after(proxy: FaultProxy) -> None:
    proxy.set_mix(FaultMix(fault_rate=1.0, faults=(THROTTLED,), retry_after_seconds=5))

    with requests.Session() as session:
        answer = post(session, proxy)

    assert (answer.status_code, answer.headers["Retry-After"]) == (429, "5")


def test_while_down_connections_are_refused_and_afterwards_it_answers_on_the_same_port(
    proxy: FaultProxy,
) -> None:
    with requests.Session() as session:
        assert post(session, proxy).status_code == 401  # a keep-alive connection is now open

        proxy.go_down()
        with pytest.raises(requests.ConnectionError) as refused:
            post(session, proxy)  # the open connection was cut; a new one is refused
        with pytest.raises(requests.ConnectionError):
            requests.post(f"{proxy.url}/faces/2", data=b"image", timeout=5)
        down_count = proxy.requests_seen()

        proxy.come_back()
        answer = post(session, proxy)

    assert "refused" in str(refused.value).lower()
    assert down_count == 1  # nothing reached the proxy while it was down
    assert answer.status_code == 401
    assert proxy.requests_seen() == 2


def test_a_mix_of_nothing_but_unknown_faults_is_refused() -> None:
    with pytest.raises(ValueError, match="faults must be some of"):
        FaultMix(faults=("418",))
    assert FaultMix(faults=(RESET,)).faults == (RESET,)
