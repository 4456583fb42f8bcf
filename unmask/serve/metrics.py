"""/metrics: the engine's counters in the Prometheus text format, read at scrape time."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class EngineCollector:
    def __init__(self, engine: Any, loop: Any) -> None:
        self.engine, self.loop = engine, loop

    def collect(self):
        e, s = self.engine, self.engine.stats
        yield GaugeMetricFamily("unmask_requests_running", "requests holding a row (slot) in a group",
                                value=e.num_running)
        yield GaugeMetricFamily("unmask_requests_waiting", "requests queued for a slot", value=e.num_waiting)
        yield GaugeMetricFamily("unmask_requests_in_flight", "HTTP-side requests awaiting engine output",
                                value=self.loop.running())
        yield GaugeMetricFamily("unmask_groups", "groups of rows sharing one forward", value=len(e.groups))
        finished = CounterMetricFamily("unmask_requests_finished", "requests that left the engine, by reason",
                                       labels=["reason"])
        for reason, n in sorted(s.by_reason.items()):
            finished.add_metric([reason], n)
        yield finished
        yield CounterMetricFamily("unmask_nfe", "model forwards spent on finished requests (per request row)",
                                  value=s.nfe)
        yield CounterMetricFamily("unmask_verifier_nfe", "verifier-model forwards spent on finished requests "
                                  "(AR-verified decoding: apd, specdiff, guided)", value=s.verifier_nfe)
        yield CounterMetricFamily("unmask_generated_tokens", "completion tokens of finished requests", value=s.tokens)
        yield CounterMetricFamily("unmask_engine_steps", "engine steps run", value=s.steps)
        yield CounterMetricFamily("unmask_engine_step_seconds", "seconds spent in engine steps", value=s.step_seconds)
        yield GaugeMetricFamily("unmask_engine_last_step_seconds", "duration of the last engine step",
                                value=s.last_step_seconds)


def metrics_text(engine: Any, loop: Any) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(engine, loop))
    return generate_latest(registry)
