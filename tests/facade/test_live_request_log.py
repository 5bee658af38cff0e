"""Live: the request log says what the client asked for and what it got, and
names the facade's endpoints (issue 10 items 10, 12, 13)."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.facade.gunicorn_proc import Facade, start_facade
from tests.facade.live import CoreProcess, ModelDouble, Reply, log_row, start_core

MODEL = "sonnet"
CHAT = "/v1/chat/completions"


def _rid() -> str:
    return "req-" + secrets.token_hex(8)


def test_sdk_requests_are_logged_as_streamed_only_when_they_streamed(
    sdk: openai.OpenAI, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.text("plain answer"))
    plain, streamed, response = _rid(), _rid(), _rid()
    messages: list[dict[str, str]] = [{"role": "user", "content": "hello"}]
    sdk.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        extra_headers={"X-Request-Id": plain},
    )
    for _ in sdk.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        stream=True,
        extra_headers={"X-Request-Id": streamed},
    ):
        pass
    sdk.responses.create(model=MODEL, input="hello", extra_headers={"X-Request-Id": response})
    assert not log_row(core, CHAT, plain).stream
    assert log_row(core, CHAT, streamed).stream
    assert not log_row(core, "/v1/responses", response).stream


def test_an_overloaded_model_is_logged_as_the_503_the_client_got(
    sdk: openai.OpenAI, core: CoreProcess, model_double: ModelDouble
) -> None:
    model_double.set_default(Reply.error(529, "overloaded_error", "Overloaded"))
    ids = [_rid() for _ in range(3)]
    for rid in ids:
        with pytest.raises(openai.InternalServerError) as failure:
            sdk.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": "are you there"}],
                extra_headers={"X-Request-Id": rid},
            )
        assert failure.value.status_code == 503
    for rid in ids:
        row = log_row(core, CHAT, rid)
        assert (row.status, row.outcome) == (503, "error"), row


@pytest.fixture(scope="module")
def own_core(model_double: ModelDouble) -> Iterator[CoreProcess]:
    # Its own core: the address locks must not reach other tests.
    core = start_core(model_double.url)
    yield core
    core.cleanup()


def _models(facade: Facade, key: str, forwarded_for: str) -> httpx.Response:
    return httpx.get(
        facade.base_url + "/v1/models",
        headers={"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded_for},
        timeout=10,
    )


def _wrong() -> str:
    return f"sk-cc-{secrets.token_hex(16)}"


def _until_refused(send: Callable[[int], httpx.Response]) -> list[httpx.Response]:
    """Wrong-key requests up to the first refusal (the budget refills slowly
    while they run, so it may take a few past 20)."""
    sent: list[httpx.Response] = []
    while len(sent) < 40 and (not sent or sent[-1].status_code != 429):
        sent.append(send(len(sent)))
    return sent


def _statuses(sent: list[httpx.Response]) -> list[int]:
    return [r.status_code for r in sent]


def test_wrong_keys_are_slowed_per_client_address_behind_the_facade(
    own_core: CoreProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    token = own_core.env["CCAPI_ADMIN_TOKEN"]
    logs = tmp_path_factory.mktemp("addresses")
    direct = start_facade(own_core.addr, logs / "direct.log", 1, admin_token=token)
    proxied = start_facade(
        own_core.addr,
        logs / "proxied.log",
        1,
        extra_env={"CCAPI_TRUST_PROXY": "1"},
        admin_token=token,
    )
    try:
        # Behind a trusted proxy each client address has its own budget.
        statuses = _statuses(_until_refused(lambda _: _models(proxied, _wrong(), "198.51.100.7")))
        assert statuses[:20] == [401] * 20 and statuses[-1] == 429
        assert _models(proxied, _wrong(), "198.51.100.8").status_code == 401
        # A valid key from the slowed address still works.
        assert _models(proxied, own_core.api_key, "198.51.100.7").status_code == 200
        # Without the trust setting, X-Forwarded-For is the client's to choose
        # and ignored: rotating it buys no more tries.
        sent = _until_refused(lambda i: _models(direct, _wrong(), f"203.0.113.{i}"))
        assert _statuses(sent)[:20] == [401] * 20 and sent[-1].status_code == 429
        refused = sent[-1]
        assert int(refused.headers["retry-after"]) >= 1
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert _models(direct, own_core.api_key, "203.0.113.0").status_code == 200
    finally:
        direct.stop()
        proxied.stop()
