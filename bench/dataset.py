"""A synthetic but realistic alert history: the rows that the history bench loads.

Deterministic (a seeded `random.Random`), so both backends get the same rows in the same order
and every run the same database:

- ~2,000 alertnames drawn with Zipf-like weights (1 / rank^s): the top name carries about a
  sixth of all events, the rarest a few dozen;
- 50 namespaces (also skewed), a severity per alertname (critical / warning / info), a
  receiver per severity;
- one fingerprint per (alertname, instance) (Alertmanager's, computed from the labels); busy
  alertnames fire on more instances;
- episodes start uniformly over the last `days` days before `end_ns` (default: this hour);
  each is a firing event (received ~30 s after it
  started, `notify_count` 1 + one per hour it lasted) and, unless it is still going at the end
  of the window, a resolved event (received ~30 s after it ended);
- events are sorted by arrival, so `first_seen` increases with the id the database assigns;
- `alert_current` holds one row per fingerprint: its latest state, as the service's upsert
  would have left it.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import time
from collections import Counter
from dataclasses import dataclass, field

from alert_history.domain.fingerprint import fingerprint
from alert_history.storage.sql import encode_map

S = 1_000_000_000  # ns per second
HOUR_NS = 3600 * S


def this_hour_ns() -> int:
    """Now, floored to the hour: the default end of the window (the last `days` days)."""
    return time.time_ns() // HOUR_NS * HOUR_NS


SUBJECTS = (
    "Kube", "KubePod", "KubeNode", "KubeDeployment", "KubeStatefulSet", "KubeJob", "Node",
    "NodeFilesystem", "NodeNetwork", "Etcd", "Prometheus", "Alertmanager", "Postgres",
    "PgBouncer", "Redis", "Nginx", "Ingress", "CertManager", "CoreDNS", "Kafka", "Zookeeper",
    "Elasticsearch", "RabbitMQ", "MinIO", "Vault", "Consul", "HAProxy", "Envoy", "Istio",
    "Argo", "Jenkins", "Grafana", "Loki", "Tempo", "Thanos", "Mysql", "Mongo", "Memcached",
    "Api", "Checkout",
)  # fmt: skip
CONDITIONS = (
    "Down", "HighLatency", "HighErrorRate", "CrashLooping", "NotReady", "TooManyRestarts",
    "MemoryHigh", "CPUThrottling", "DiskAlmostFull", "DiskWillFillIn4Hours", "ReplicasMismatch",
    "QueueBacklog", "ConnectionsExhausted", "CertificateExpiring", "ScrapeFailing",
    "TargetMissing", "SlowQueries", "ReplicationLag", "LeaderChanges", "OOMKilled",
    "HighRequestRate", "5xxBurst", "SaturationHigh", "ConfigReloadFailed", "BackupFailed",
    "JobFailed", "ClockSkew", "PacketLoss", "FileDescriptorsHigh", "GCPausesLong",
    "ThreadPoolExhausted", "CacheHitRateLow", "WALArchiveFailing", "QuotaExceeded",
    "LicenseExpiring", "HealthCheckFailing", "PartitionOffline", "IndexBloat",
    "StuckTransactions", "VersionMismatch", "ThroughputDrop", "Flapping", "Unschedulable",
    "Evicted", "PendingTooLong", "RolloutStuck", "HPAMaxedOut", "PVCPending",
    "NetworkErrors", "DNSFailures",
)  # fmt: skip
FIXED_NAMESPACES = ("prod", "dev", "staging", "kube-system", "monitoring", "ingress-nginx")
SEVERITIES = (("critical", 0.2), ("warning", 0.55), ("info", 0.25))
RECEIVERS = {"critical": "pagerduty", "warning": "slack-warnings", "info": "email-info"}


@dataclass(frozen=True)
class Spec:
    events: int = 1_000_000
    alertnames: int = 2_000
    namespaces: int = 50
    days: int = 30
    zipf_s: float = 1.1
    events_per_fingerprint: int = 40  # average over the window, sets the instance counts
    max_instances: int = 2_000
    seed: int = 20_261_127
    #: the end of the window; the rows are the same for the same end (times shift with it)
    end_ns: int = field(default_factory=this_hour_ns)

    @property
    def start_ns(self) -> int:
        return self.end_ns - self.days * 86_400 * S


@dataclass
class Dataset:
    spec: Spec
    #: alert_events rows, in EVENT_FIELDS order, sorted by first_seen (= id order)
    events: list[tuple[object, ...]]
    #: alert_current rows, in CURRENT_FIELDS order
    current: list[tuple[object, ...]]
    alertname_counts: Counter[str] = field(default_factory=Counter)
    build_s: float = 0.0

    @property
    def fingerprints(self) -> int:
        return len(self.current)

    def count(self, **where: object) -> int:
        """How many events match every `column=value` (a callable value is a predicate)."""
        index = {name: i for i, name in enumerate(EVENT_COLUMNS)}
        tests = [(index[k], v) for k, v in where.items()]
        return sum(
            1
            for row in self.events
            if all(v(row[i]) if callable(v) else row[i] == v for i, v in tests)
        )


EVENT_COLUMNS = (
    "fingerprint", "status", "starts_at", "ends_at", "alertname", "namespace", "severity",
    "labels", "annotations", "generator_url", "receiver", "group_key", "source",
    "fingerprint_computed", "first_seen", "last_seen", "notify_count",
)  # fmt: skip


def _alertnames(n: int) -> list[tuple[str, str]]:
    """(alertname, job) pairs, in a shuffled order (the order is the Zipf rank)."""
    names = [(s + c, s.lower()) for c, s in itertools.product(CONDITIONS, SUBJECTS)]
    rng = random.Random(7)
    rng.shuffle(names)
    for extra in itertools.count(2):
        if len(names) >= n:
            break
        names += [(f"{name}V{extra}", job) for name, job in names[: n - len(names)]]
    return names[:n]


def _namespaces(n: int) -> list[str]:
    teams = [f"team-{i:02d}" for i in range(1, n - len(FIXED_NAMESPACES) + 1)]
    return list(FIXED_NAMESPACES + tuple(teams))[:n]


@dataclass(frozen=True)
class _Fp:
    fingerprint: str
    alertname: str
    namespace: str
    severity: str
    labels: str  # JSON text, sorted keys, as the service stores it
    annotations: str
    generator_url: str
    receiver: str
    group_key: str


def build(spec: Spec) -> Dataset:
    began = time.monotonic()
    rng = random.Random(spec.seed)
    names = _alertnames(spec.alertnames)
    namespaces = _namespaces(spec.namespaces)
    ns_cum = list(itertools.accumulate(1 / (i + 1) ** 0.8 for i in range(len(namespaces))))
    weights = [1 / (rank + 1) ** spec.zipf_s for rank in range(len(names))]
    total_w = sum(weights)
    sev_names = [s for s, _ in SEVERITIES]
    sev_cum = list(itertools.accumulate(w for _, w in SEVERITIES))

    # fingerprints: instances per alertname in proportion to its expected events
    fps: list[_Fp] = []
    first_fp: list[int] = []
    for rank, (name, job) in enumerate(names):
        expected = spec.events * weights[rank] / total_w
        instances = max(1, min(spec.max_instances, round(expected / spec.events_per_fingerprint)))
        severity = sev_names[bisect.bisect(sev_cum, rng.random() * sev_cum[-1])]
        url = (
            "http://prometheus.monitoring.svc:9090/graph?g0.expr="
            f"{name}_condition%7Bjob%3D%22{job}%22%7D+%3E+0&g0.tab=1"
        )
        first_fp.append(len(fps))
        for i in range(instances):
            ns = namespaces[bisect.bisect(ns_cum, rng.random() * ns_cum[-1])]
            instance = f"{job}-{i:04d}.{ns}.svc:9100"
            labels = {
                "alertname": name,
                "instance": instance,
                "job": job,
                "namespace": ns,
                "severity": severity,
                "prometheus": "monitoring/k8s",
            }
            if i % 3 == 0:
                labels["pod"] = f"{job}-{rng.getrandbits(32):08x}-{i:04d}"
            annotations = {
                "summary": f"{name} on {instance}",
                "description": f"{name} has been active on {instance} in namespace {ns} "
                "for more than 5 minutes.",
                "runbook_url": f"https://runbooks.example.com/alerts/{name.lower()}",
            }
            fps.append(
                _Fp(
                    fingerprint=fingerprint(labels),
                    alertname=name,
                    namespace=ns,
                    severity=severity,
                    labels=encode_map(labels).decode(),
                    annotations=encode_map(annotations).decode(),
                    generator_url=url,
                    receiver=RECEIVERS[severity],
                    group_key=f'{{}}/{{severity="{severity}"}}:{{alertname="{name}"}}',
                )
            )
    first_fp.append(len(fps))
    if len({f.fingerprint for f in fps}) != len(fps):
        raise RuntimeError("dataset: fingerprint collision")

    # episodes: (fp index, starts_at, ends_at or 0 when still firing at the end), until the
    # firing and resolved events add up to spec.events
    cum = list(itertools.accumulate(weights))
    span = spec.days * 86_400 * S
    episodes: list[tuple[int, int, int]] = []
    seen: set[tuple[int, int]] = set()
    total = 0
    while total < spec.events:
        rank = bisect.bisect(cum, rng.random() * cum[-1])
        fp = first_fp[rank] + rng.randrange(first_fp[rank + 1] - first_fp[rank])
        starts = spec.start_ns + rng.randrange(span // 1_000_000) * 1_000_000  # ms precision
        if (fp, starts) in seen:
            continue
        seen.add((fp, starts))
        duration = int(math.exp(rng.gauss(math.log(600), 1.6)) * S)  # median 10 min
        ends = starts + duration
        resolved = ends + 30 * S < spec.end_ns and total + 2 <= spec.events
        episodes.append((fp, starts, ends if resolved else 0))
        total += 2 if resolved else 1

    # events by arrival
    arrivals: list[tuple[int, int, bool]] = []  # (first_seen, episode, resolved?)
    for e, (_, starts, ends) in enumerate(episodes):
        arrivals.append((starts + (30 + rng.randrange(5)) * S, e, False))
        if ends:
            arrivals.append((ends + (30 + rng.randrange(5)) * S, e, True))
    arrivals.sort()

    events: list[tuple[object, ...]] = []
    best: dict[int, tuple[tuple[int, int], tuple[object, ...]]] = {}
    counts: Counter[str] = Counter()
    for first_seen, e, resolved in arrivals:
        fpi, starts, ends = episodes[e]
        f = fps[fpi]
        if resolved:
            notify, last_seen, status, ends_at = 1, first_seen, "resolved", ends
        else:
            lasted = (ends or spec.end_ns) - starts
            notify = 1 + min(lasted // HOUR_NS, 48)
            last_seen = first_seen + (notify - 1) * HOUR_NS
            status, ends_at = "firing", 0
        events.append(
            (
                f.fingerprint, status, starts, ends_at, f.alertname, f.namespace, f.severity,
                f.labels, f.annotations, f.generator_url, f.receiver, f.group_key,
                "alertmanager", False, first_seen, last_seen, notify,
            )
        )  # fmt: skip
        counts[f.alertname] += 1
        key = (starts, 1 if resolved else 0)
        if fpi not in best or key >= best[fpi][0]:
            current = (
                f.fingerprint, status, starts, ends_at, f.alertname, f.namespace, f.severity,
                last_seen,
            )  # fmt: skip
            best[fpi] = (key, current)
    current_rows = [row for _, row in sorted(best.values(), key=lambda kv: str(kv[1][0]))]
    return Dataset(spec, events, current_rows, counts, time.monotonic() - began)
