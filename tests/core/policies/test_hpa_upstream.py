"""Kubernetes' own HPA unit tests, replayed on `autoscaler/policies/hpa.py`.

Each test names the upstream case it ports (kubernetes/kubernetes
`pkg/controller/podautoscaler/replica_calculator_test.go` and `horizontal_test.go`) and keeps its
inputs and expected output. Upstream levels are milli-units; a pod's metric is `PodGroups`:
`usage_m` sums what the counted pods report (Running with a sample, Ready or not, as `groupPods`
has it for a non-CPU metric), `unready` counts Pending-phase pods, `missing` Running pods with
no sample. Cases written for CPU are replayed only where a `Pods` metric takes the same branch
with the same numbers, and say so ("re-expressed"): a target of 100 % of a 1000m request is a
1000m target, and a CPU-unready pod is ignored like a Pending one.

horizontal_test.go runs the controller with `scaleUpLimitFactor = 8` (its `init`), a 5 min
downscale stabilization and tolerance 0.1; `CONTROLLER` below is that. Its `recommendations:
[]timestampedRecommendation{}` (an empty log, so no initial recommendation is recorded) is
`EMPTY_LOG` here: a log whose only entry is older than the window.
"""

from __future__ import annotations

import pytest

from autoscaler.policies.hpa import (
    HpaConfig,
    HpaState,
    PodGroups,
    convert_with_rules,
    plain_metric_replicas,
    reconcile,
    stabilize_recommendation,
)

TOLERANCE = 0.1
EMPTY_LOG = HpaState(recommendations=((-3600.0, 0),))


def controller(target: float, min_replicas: int, max_replicas: int) -> HpaConfig:
    """horizontal_test.go's controller: no behavior, scale-up limit factor 8."""
    return HpaConfig(
        target_per_pod=target,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        scale_up_limit_factor=8.0,
    )


# --- replica_calculator_test.go: GetMetricReplicas (podMetric) -> calcPlainMetricReplicas ------


@pytest.mark.parametrize(
    ("upstream", "current", "pods", "target_m", "expected"),
    [
        # levels {20000, 10000, 30000}: 20000 / 15000 -> ceil(1.33 * 3) = 4
        ("TestReplicaCalcScaleUpCM", 3, PodGroups(60_000, 3), 15_000, 4),
        # readiness {True, True, False}: the unready pod still counts for a non-CPU metric:
        # 90000 / 3 = 30000 -> ratio 2 -> 6 (CPU would have ignored it)
        ("TestReplicaCalcScaleUpCMUnreadyHotCpuNoLessScale", 3, PodGroups(90_000, 3), 15_000, 6),
        # readiness {False, True, False}, levels {50000, 15000, 30000}: 95000 // 3 = 31666
        # -> ratio 2.11 -> ceil(6.33) = 7
        (
            "TestReplicaCalcScaleUpCMUnreadyHotCpuScaleWouldScaleDown",
            3,
            PodGroups(95_000, 3),
            15_000,
            7,
        ),
        # 5 x 12000 against 20000 -> 0.6 -> 3
        ("TestReplicaCalcScaleDownCM", 5, PodGroups(60_000, 5), 20_000, 3),
        # {20000, 21000, 21000}: 20666 / 20000 = 1.033, within 0.1 -> 3
        ("TestReplicaCalcToleranceCM", 3, PodGroups(62_000, 3), 20_000, 3),
        # re-expressed (CPU, 100 % of 1000m): {400, 95} and 2 pods without metrics; 247 -> a
        # scale-down, so the missing pods count at the target: 2495 // 4 = 623 -> ceil(2.49) = 3
        ("TestReplicaCalcMissingMetrics", 4, PodGroups(495, 2, missing=2), 1000, 3),
        # re-expressed: {1000} + 1 missing: ratio exactly 1, missing pods left out -> 2
        ("TestReplicaCalcMissingMetricsNoChangeEq", 2, PodGroups(1000, 1, missing=1), 1000, 2),
        # re-expressed: {1900} + 1 missing at 0 on a scale-up: 950 -> within tolerance -> 2
        ("TestReplicaCalcMissingMetricsNoChangeGt", 2, PodGroups(1900, 1, missing=1), 1000, 2),
        # re-expressed: {600} + 1 missing at the target: 800 -> ceil(0.8 * 2) = 2
        ("TestReplicaCalcMissingMetricsNoChangeLt", 2, PodGroups(600, 1, missing=1), 1000, 2),
        # re-expressed (CPU 50 % = 500m): 1 Running pod at 100, 4 Pending ones dropped -> 0.2 -> 1
        (
            "TestReplicaCalcScaleDownExcludeUnscheduledPods",
            5,
            PodGroups(100, 1, unready=4),
            500,
            1,
        ),
        # re-expressed (CPU 30 % = 300m): readiness {False, True, True}, {300, 500, 700}; the
        # ignored pod is set to 0 on the scale-up: 1200 // 3 = 400 -> ceil(1.33 * 3) = 4
        ("TestReplicaCalcScaleUpUnreadyLessScale", 3, PodGroups(1200, 2, unready=1), 300, 4),
        # re-expressed: {True, False, False}, {400, ...}: 400 -> 1.33, but with the two ignored
        # pods at 0: 133 -> 0.44 would reverse the direction -> keep 3
        ("TestReplicaCalcScaleUpUnreadyNoScale", 3, PodGroups(400, 1, unready=2), 300, 3),
    ],
)
def test_replica_calculator(upstream, current, pods, target_m, expected) -> None:
    proposal = plain_metric_replicas(pods, current, target_m, TOLERANCE)
    assert not isinstance(proposal, str), upstream
    assert proposal.replicas == expected, upstream


def test_replica_calculator_without_metrics_proposes_nothing() -> None:
    # TestReplicaCalcEmptyMetrics's point for a Pods metric: no counted pod, no proposal
    # ("did not receive metrics for targeted pods"), and the controller keeps the scale.
    assert isinstance(plain_metric_replicas(PodGroups(0, 0, unready=3), 3, 1000, TOLERANCE), str)


# --- horizontal_test.go: reconcileAutoscaler without behavior --------------------------------


@pytest.mark.parametrize(
    ("upstream", "pods", "state", "expected", "reason"),
    [
        # min 2, max 6, spec 3, AverageValue 15, levels {20000, 10000, 30000} -> 4
        ("TestScaleUpCM", PodGroups(60_000, 3), HpaState(), 4, "hpa-scale-up"),
        # readiness {True, True, False}, levels {50000, 10000, 30000} -> 6
        ("TestScaleUpCMUnreadyAndHotCpuNoLessScale", PodGroups(90_000, 3), HpaState(), 6, None),
        # readiness {False, True, False}, levels {50000, 15000, 30000} -> 7, TooManyReplicas 6
        ("TestScaleUpCMUnreadyandCpuHot", PodGroups(95_000, 3), HpaState(), 6, "bounds"),
        # all ready, same levels -> 7 -> TooManyReplicas 6
        ("TestScaleUpHotCpuNoScaleWouldScaleDown", PodGroups(95_000, 3), HpaState(), 6, "bounds"),
    ],
)
def test_horizontal_scale_up(upstream, pods, state, expected, reason) -> None:
    decision, _ = reconcile(controller(15.0, 2, 6), state, 0.0, 3, pods)
    assert decision.desired == expected, upstream
    assert decision.reason == (reason or "hpa-scale-up"), upstream


def test_horizontal_scale_down_cm() -> None:
    # TestScaleDownCM: min 2, max 6, spec 5, AverageValue 20, 5 x 12000, empty log -> 3
    decision, _ = reconcile(controller(20.0, 2, 6), EMPTY_LOG, 0.0, 5, PodGroups(60_000, 5))
    assert (decision.desired, decision.reason) == (3, "hpa-scale-down")


@pytest.mark.parametrize(
    ("upstream", "state", "expected", "reason"),
    [
        # re-expressed (CPU 50 %, {100, 300, 500, 250, 250} of 1000m: 28 % -> 0.56 -> 3), with
        # the empty log -> 3 ...
        ("TestScaleDown", EMPTY_LOG, 3, "hpa-scale-down"),
        # ... and with no log (nil): the initial recommendation 5 holds it, ScaleDownStabilized
        ("TestScaleDownStabilizeInitialSize", HpaState(), 5, "hpa-stabilized"),
    ],
)
def test_horizontal_scale_down_stabilization(upstream, state, expected, reason) -> None:
    decision, _ = reconcile(controller(0.5, 2, 6), state, 0.0, 5, PodGroups(1400, 5))
    assert (decision.desired, decision.reason) == (expected, reason), upstream


@pytest.mark.parametrize(
    ("current", "desired", "low", "high", "expected", "limit"),
    [
        (5, 7, 3, 8, 7, ""),  # "prenormalized desired replicas within range"
        (3, 1, 2, 8, 2, "bounds"),  # "prenormalized desired replicas < minReplicas"
        (20, 1000, 1, 10, 10, "bounds"),  # "maxReplicas is the limit ..." (TooManyReplicas)
        (3, 1000, 1, 2000, 24, "rate-limited"),  # "scaleUpLimit is the limit ...": 8 x 3
    ],
)
def test_convert_desired_replicas_with_rules(current, desired, low, high, expected, limit):
    # TestConvertDesiredReplicasWithRules (its "hpaMinReplicas < 1" case needs minReplicas 0,
    # which HpaConfig refuses: scale to zero is the HPAScaleToZero alpha).
    cfg = controller(1.0, low, high)
    converted = convert_with_rules(
        current,
        desired,
        min_replicas=cfg.min_replicas,
        max_replicas=cfg.max_replicas,
        factor=cfg.scale_up_limit_factor,
        minimum=cfg.scale_up_limit_minimum,
    )
    assert converted == (expected, limit)


@pytest.mark.parametrize(
    ("name", "ages_values", "proposal", "expected"),
    [
        ("empty log", (), 5, 5),
        ("stabilize", ((120, 4), (60, 5)), 3, 5),
        ("no stabilize", ((120, 1), (60, 2)), 3, 3),
        ("no stabilize - old recommendations", ((600, 10), (540, 9)), 3, 3),
        ("stabilize - old recommendations", ((600, 10), (60, 4), (120, 5), (540, 9)), 3, 5),
    ],
)
def test_normalize_desired_replicas(name, ages_values, proposal, expected) -> None:
    # TestNormalizeDesiredReplicas (stabilizeRecommendation, 5 min window). Upstream reuses one
    # stale slot and keeps the other stale entries; they can never count again (the cutoff only
    # moves forward), so the log here drops them: same answers, a shorter log.
    now = 10_000.0
    log = tuple((now - age, value) for age, value in ages_values)
    stabilized, kept = stabilize_recommendation(log, now, 300.0, proposal)
    assert stabilized == expected, name
    assert kept[-1] == (now, proposal)
    assert all(now - t < 300 for t, _ in kept), name
