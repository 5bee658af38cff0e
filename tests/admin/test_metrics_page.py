"""The admin site's /metrics (exposure setting, no sign-in) and the trace id
on a log entry's page."""

from __future__ import annotations

import falcon.testing

from admin_web.app import create_app
from ccapi_client.telemetry import MetricsExposure
from tests.admin.conftest import Browser, make_config
from tests.admin.fake_admin import FakeAdmin


def test_metrics_follow_the_exposure_setting(fake: FakeAdmin) -> None:
    config = make_config(fake.addr)
    on = falcon.testing.TestClient(create_app(config, exposure=MetricsExposure("on")))
    on.simulate_get("/login")
    scraped = on.simulate_get("/metrics")
    assert scraped.status_code == 200
    assert ('ccapi_admin_requests_total{endpoint="/login",method="GET",outcome="ok",'
            'status="200"} 1.0') in scraped.text

    off = falcon.testing.TestClient(create_app(config, exposure=MetricsExposure("off")))
    assert off.simulate_get("/metrics").status_code == 404

    token = falcon.testing.TestClient(create_app(config, exposure=MetricsExposure("token", "t")))
    assert token.simulate_get("/metrics").status_code == 401
    assert token.simulate_get("/metrics", headers={"Authorization": "Bearer t"}).status_code == 200


def test_log_entry_shows_its_trace_id(admin: Browser, fake: FakeAdmin) -> None:
    entry = fake.add_log(endpoint="/v1/chat/completions", status=200,
                         trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    page = admin.get(f"/logs/{entry.id}")
    assert page.status_code == 200
    assert 'data-trace-id="4bf92f3577b34da6a3ce929d0e0e4736"' in page.text
