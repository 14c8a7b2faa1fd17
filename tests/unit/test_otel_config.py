"""The standard OTEL_* variables: parsing, defaults, and clear errors at start."""

from __future__ import annotations

import pytest

from financial.configs import SettingsError, otel
from tests.unit.settings_env import load

pytestmark = pytest.mark.usefixtures("clean_env")


def test_exporter_lists_are_normalised() -> None:
    allowed = otel.METRICS_EXPORTERS
    assert otel.parse_exporters(" OTLP , prometheus,otlp", allowed) == ("otlp", "prometheus")
    assert otel.parse_exporters(None, allowed) == ()
    assert otel.parse_exporters("  ", allowed) == ()
    assert otel.parse_exporters("none", allowed) == ("none",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("zipkin", "a comma list of none, otlp, prometheus ('zipkin' is not one)"),
        ("otlp,", "a comma list of none, otlp, prometheus ('(empty)' is not one)"),
        ("none,otlp", "a comma list of none, otlp, prometheus, with 'none' alone"),
    ],
)
def test_bad_exporter_lists_say_what_was_expected(raw: str, message: str) -> None:
    with pytest.raises(ValueError, match="a comma list of") as caught:
        otel.parse_exporters(raw, otel.METRICS_EXPORTERS)
    assert str(caught.value) == message


def test_resource_attributes_are_key_value_pairs_percent_decoded() -> None:
    raw = "deployment.environment=prod, team=pay%20ments,,region=sa-east-1"
    assert otel.parse_resource_attributes(raw) == {
        "deployment.environment": "prod",
        "team": "pay ments",
        "region": "sa-east-1",
    }
    assert otel.parse_resource_attributes(None) == {}
    with pytest.raises(ValueError, match="the entry 'team' is not key=value"):
        otel.parse_resource_attributes("env=prod,team")
    with pytest.raises(ValueError, match="the entry '=x' is not key=value"):
        otel.parse_resource_attributes("=x")


def test_metrics_default_to_prometheus_plus_otlp_when_an_endpoint_is_set() -> None:
    assert otel.metrics_exporters((), None, None) == {"prometheus"}
    assert otel.metrics_exporters((), "http://c:4318", None) == {"prometheus", "otlp"}
    assert otel.metrics_exporters((), None, "http://c:4318/m") == {"prometheus", "otlp"}
    assert otel.metrics_exporters(("otlp",), "http://c:4318", None) == {"otlp"}
    assert otel.metrics_exporters(("none",), "http://c:4318", None) == frozenset()


def test_signal_urls_follow_the_specification() -> None:
    def targets(**kwargs: object) -> otel.OtlpTargets:
        base: dict[str, object] = {
            "traces": (),
            "metrics": (),
            "endpoint": None,
            "traces_endpoint": None,
            "metrics_endpoint": None,
        }
        return otel.otlp_targets(**{**base, **kwargs})  # type: ignore[arg-type]

    assert targets() == otel.OtlpTargets(None, None)
    assert targets(endpoint="http://c:4318/") == otel.OtlpTargets(
        "http://c:4318/v1/traces", "http://c:4318/v1/metrics"
    )
    # A signal's own URL is used as is, and turns on that signal alone.
    assert targets(metrics_endpoint="https://m.example/ingest") == otel.OtlpTargets(
        None, "https://m.example/ingest"
    )
    assert targets(endpoint="http://c:4318", traces=("none",), metrics=("prometheus",)) == (
        otel.OtlpTargets(None, None)
    )
    # Named without an endpoint: the specification's default collector.
    assert targets(traces=("otlp",), metrics=("otlp",)) == otel.OtlpTargets(
        "http://localhost:4318/v1/traces", "http://localhost:4318/v1/metrics"
    )


def test_settings_read_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "Prometheus,OTLP")
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:4318/v1/metrics")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "env=prod")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "15000")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    settings = load()
    assert settings.otel_metrics_exporter == "prometheus,otlp"
    assert settings.otel_traces_exporter == "none"
    assert settings.otel_exporter_otlp_metrics_endpoint == "http://m:4318/v1/metrics"
    assert settings.otel_resource_attributes == "env=prod"
    assert settings.otel_metric_export_interval == 15000


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        (
            "OTEL_METRICS_EXPORTER",
            "statsd",
            "expected a comma list of none, otlp, prometheus ('statsd' is not one)",
        ),
        (
            "OTEL_TRACES_EXPORTER",
            "prometheus",
            "expected a comma list of none, otlp ('prometheus' is not one)",
        ),
        (
            "OTEL_RESOURCE_ATTRIBUTES",
            "env",
            "expected key1=value1,key2=value2 (the entry 'env' is not key=value)",
        ),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "collector:4318",
            "expected an http:// or https:// URL with a host, e.g. http://collector:4318",
        ),
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "ftp://c/x",
            "expected an http:// or https:// URL with a host, e.g. http://collector:4318",
        ),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "expected http/protobuf (the only OTLP"),
    ],
)
def test_malformed_variables_are_refused_at_start_naming_them(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load()
    assert str(caught.value).startswith(f"{variable}={value!r}: {expected}"), str(caught.value)


def test_a_zero_export_interval_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "0")
    with pytest.raises(SettingsError, match="OTEL_METRIC_EXPORT_INTERVAL='0'"):
        load()
