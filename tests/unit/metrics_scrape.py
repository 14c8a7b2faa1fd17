"""Reading the metrics as Prometheus scrapes them, for the metrics tests: the samples of one
scrape of the `metrics` fixture (conftest.py)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from financial.pkg.observability.metrics import Metrics

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(metrics: Metrics) -> Samples:
    """Every sample of the exposition, by name and labels."""
    text = (await metrics.render()).decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))
