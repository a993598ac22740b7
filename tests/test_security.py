"""What a namespace owner writes is untrusted: annotations never reach a reconcile worker
unguarded, and a worker that fails anyway is replaced (marker `security`)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kubernetes_asyncio import client

from adapters.knative.adapter import KnativeAdapter
from adapters.knative.annotations import POLICY_ANNOTATIONS, QUERY_ANNOTATIONS, revision_settings
from adapters.knative.reconciler import Outcome
from autoscaler.config import PolicyConfig

pytestmark = pytest.mark.security

VALUE_LIMIT, QUERY_LIMIT = 256, 4096
"""The longest policy value and PromQL template read (adapters/knative/annotations.py)."""
HUGE_NUMBER = "9" * 5000
"""More digits than Python converts to an int (4,300): it once raised ValueError in every
reconcile of its revision, killing one worker per resync."""
HOSTILE_VALUES = [
    HUGE_NUMBER,
    "-" + HUGE_NUMBER,
    "1" * (VALUE_LIMIT + 1),
    "[" * 5000 + "]" * 5000,
    "{a: " * 2000 + "1" + "}" * 2000,
    "&a [*a, *a]",
    "!!python/object/apply:os.system ['true']",
    "\u202e\u0000\U0001f600" * 100,
    "1e999",
    "nan",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=range(len(HOSTILE_VALUES)))
@pytest.mark.parametrize("annotation", sorted(POLICY_ANNOTATIONS))
def test_a_hostile_value_is_a_problem_of_its_annotation_never_an_exception(annotation, value):
    settings_ = revision_settings({annotation: value}, 0, PolicyConfig())
    assert annotation in settings_.problems, settings_.problems
    message = settings_.problems[annotation]
    assert message.startswith(annotation) and "\n" not in message and len(message) < 600


@settings(max_examples=200, deadline=None)
@given(
    annotations=st.dictionaries(
        st.sampled_from(sorted(POLICY_ANNOTATIONS) + sorted(QUERY_ANNOTATIONS)),
        st.text(min_size=VALUE_LIMIT + 1, max_size=QUERY_LIMIT + 50)
        | st.sampled_from(HOSTILE_VALUES),
        min_size=1,
    )
)
def test_long_values_are_refused_before_any_parser_reads_them(annotations):
    settings_ = revision_settings(annotations, 0, PolicyConfig())
    for annotation, value in annotations.items():
        limit = QUERY_LIMIT if annotation in QUERY_ANNOTATIONS else VALUE_LIMIT
        if len(value) > limit:
            assert "characters; at most" in settings_.problems[annotation]
        if annotation in QUERY_ANNOTATIONS and len(value) > limit:
            assert QUERY_ANNOTATIONS[annotation] not in settings_.queries
    settings_.policy.leadtime_config()  # whatever was refused, the policy builds


async def test_a_failing_reconcile_is_logged_counted_and_requeued_and_no_worker_is_lost(
    monkeypatch,
):
    """The worker loop, without a cluster: one revision's reconcile raises past every guard
    (the failure that once ended a worker per resync); the worker lives on, the failure is
    counted, and the revision is tried again."""
    monkeypatch.setattr("adapters.knative.adapter.REQUEUE_S", 0.01)
    api = client.ApiClient()
    adapter = KnativeAdapter(api, PolicyConfig(), workers=2)
    calls: list[tuple[str, str]] = []

    async def reconcile(key):
        calls.append(key)
        if key == ("tenant", "hostile") and calls.count(key) == 1:
            raise ValueError("Exceeds the limit (4300 digits) for integer string conversion")
        return Outcome()

    monkeypatch.setattr(adapter, "reconcile", reconcile)
    for number in range(adapter.workers):
        adapter._start_worker(number)
    try:
        adapter._enqueue(("tenant", "hostile"))
        adapter._enqueue(("tenant", "fine"))
        for _ in range(200):
            if calls.count(("tenant", "hostile")) >= 2 and ("tenant", "fine") in calls:
                break
            await asyncio.sleep(0.01)
        assert calls.count(("tenant", "hostile")) == 2 and ("tenant", "fine") in calls
        assert adapter.worker_failures == 1
        assert len(adapter._tasks) == 2 and not any(t.done() for t in adapter._tasks)
    finally:
        await adapter.stop()
        await api.close()


async def test_a_worker_that_dies_is_replaced(monkeypatch):
    api = client.ApiClient()
    adapter = KnativeAdapter(api, PolicyConfig(), workers=1)
    crashed = asyncio.Event()

    async def work():
        if not crashed.is_set():
            crashed.set()
            raise RuntimeError("a bug in the worker loop itself")
        await asyncio.sleep(3600)

    monkeypatch.setattr(adapter, "_work", work)
    adapter._start_worker(0)
    try:
        await crashed.wait()
        for _ in range(100):
            if adapter.worker_failures:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)
        assert adapter.worker_failures == 1
        assert len(adapter._tasks) == 1 and not adapter._tasks[0].done()
    finally:
        await adapter.stop()
        await api.close()
