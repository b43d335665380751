"""The service on its embedded redis-server (the `make run` default) under traffic: a SIGKILL
of the server is healed with no acknowledged upload lost, and a SIGKILL of the service takes
its server along, so a plain restart on the same data serves again with no manual step."""

from __future__ import annotations

import pytest

from harness.embedded_faults import embedded_problems, kill_redis_under_traffic

pytestmark = [pytest.mark.service, pytest.mark.slow]


def test_embedded_redis_and_service_kills_heal_without_a_manual_step(tmp_path, minilm):
    figures = kill_redis_under_traffic(tmp_path / "svc", minilm)
    print(
        f"embedded redis SIGKILL: ready again after {figures['ready_after_s']:.2f}s, next "
        f"upload after {figures['upload_after_s']:.2f}s; resident predictions "
        f"{figures['hot_statuses']}, uploads {figures['upload_statuses']}; service SIGKILL: "
        f"its redis gone after {figures['redis_gone_after_service_kill']}s, restarted and "
        f"served {figures['predict_after_restart']}"
    )
    assert embedded_problems(figures) == []
