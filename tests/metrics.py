"""Reading the Prometheus text format in tests, with prometheus-client's own parser."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

CONTENT_TYPE = "text/plain; version=0.0.4"


class Samples(dict):
    """(sample name, labels) -> value of one scrape."""

    def value(self, name: str, **labels: str) -> float | None:
        return self.get((name, tuple(sorted(labels.items()))))

    def names(self) -> set[str]:
        return {name for name, _labels in self}


def parse_metrics(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(client, path: str = "/metrics", **request) -> Samples:
    """GET /metrics with a Django test client; it must answer 200 in the Prometheus text format."""
    response = client.get(path, **request)
    assert response.status_code == 200, response.status_code
    assert response["Content-Type"].startswith(CONTENT_TYPE), response["Content-Type"]
    return parse_metrics(response.content.decode())
