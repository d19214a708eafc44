"""The worker reads jobs with RAILYARD_SERIALIZER, whatever rq's command line built its queues with."""

from __future__ import annotations

import fakeredis
import pytest
from rq import Queue
from rq.serializers import DefaultSerializer, JSONSerializer

from railyard.core.errors import ConfigError
from worker.rq_worker import RailyardWorker

RQ_CLI_DEFAULT = "rq.serializers.DefaultSerializer"  # what `rq worker` passes without --serializer


def build(serializer: object) -> RailyardWorker:
    """As `rq worker` builds it: queues made first with the command line's serializer."""
    conn = fakeredis.FakeStrictRedis()
    queues = [Queue(name, connection=conn, serializer=serializer) for name in ("backup", "audio")]
    return RailyardWorker(queues, connection=conn, serializer=serializer)


@pytest.mark.parametrize(("setting", "expected"), [(None, DefaultSerializer), ("json", JSONSerializer)])
def test_the_worker_and_its_queues_use_the_setting(monkeypatch, setting: str | None, expected: object) -> None:
    if setting:
        monkeypatch.setenv("RAILYARD_SERIALIZER", setting)
    else:
        monkeypatch.delenv("RAILYARD_SERIALIZER", raising=False)
    worker = build(RQ_CLI_DEFAULT)
    assert [expected, expected, expected] == [worker.serializer, *(q.serializer for q in worker.queues)]
    assert [expected, expected] == [q.started_job_registry.serializer for q in worker.queues]


def test_a_matching_serializer_flag_is_accepted(monkeypatch) -> None:
    monkeypatch.setenv("RAILYARD_SERIALIZER", "json")
    assert JSONSerializer == build("json").serializer


def test_a_serializer_flag_that_disagrees_with_the_setting_is_refused(monkeypatch) -> None:
    monkeypatch.delenv("RAILYARD_SERIALIZER", raising=False)
    with pytest.raises(ConfigError) as info:
        build("json")
    assert ["rq worker --serializer 'json' disagrees with RAILYARD_SERIALIZER=pickle"] == [
        p.split(";")[0] for p in info.value.problems
    ]
