import pytest

from eco2.settings import DOMAIN_DATABASES, CacheSettings, SettingsError, load_settings


def test_defaults_leave_every_url_unset_so_the_embedded_stack_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("ECO2_DB__URL", "ECO2_CACHE__URL", "ECO2_KAFKA__BOOTSTRAP", "ECO2_MODEL__BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    settings = load_settings()
    assert settings.db.url is None
    assert settings.cache.url is None
    assert settings.kafka.bootstrap is None
    assert settings.model.base_url is None


def test_a_component_that_needs_valkey_names_itself_and_the_fix_when_none_is_set() -> None:
    with pytest.raises(ValueError, match=r"^the read-model API needs Valkey: set ECO2_CACHE__URL"):
        CacheSettings().require("the read-model API")
    assert CacheSettings(url="redis://c:1/0").require("x") == "redis://c:1/0"


def test_nested_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECO2_MODEL__BASE_URL", "https://api.openai.com/v1")
    monkeypatch.setenv("ECO2_MODEL__API_KEY", "sk-test")
    monkeypatch.setenv("ECO2_DB__URL", "postgresql://me@db.internal:5432/postgres")
    monkeypatch.setenv("ECO2_CACHE__URL", "redis://cache.internal:6379/0")
    monkeypatch.setenv("ECO2_KAFKA__BOOTSTRAP", "k1:9092,k2:9092")
    settings = load_settings()
    assert settings.model.base_url == "https://api.openai.com/v1"
    assert settings.model.api_key.get_secret_value() == "sk-test"
    assert settings.db.url == "postgresql://me@db.internal:5432/postgres"
    assert settings.cache.url == "redis://cache.internal:6379/0"
    assert settings.kafka.bootstrap == "k1:9092,k2:9092"


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("ECO2_DB__URL", "mysql://x", "ECO2_DB__URL"),
        ("ECO2_CACHE__URL", "http://cache", "ECO2_CACHE__URL"),
        ("ECO2_KAFKA__BOOTSTRAP", "no-port-here", "ECO2_KAFKA__BOOTSTRAP"),
        ("ECO2_MODEL__BASE_URL", "ftp://models", "ECO2_MODEL__BASE_URL"),
        ("ECO2_MODEL__REQUEST_TIMEOUT_S", "-1", "ECO2_MODEL__REQUEST_TIMEOUT_S"),
        ("ECO2_TELEMETRY__TRACES", "zipkin", "ECO2_TELEMETRY__TRACES"),
        ("ECO2_API__PORT", "70000", "ECO2_API__PORT"),
    ],
)
def test_a_bad_value_fails_at_start_up_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=field):
        load_settings()


def test_each_domain_has_its_own_database_name() -> None:
    settings = load_settings()
    names = {settings.database_name(d) for d in DOMAIN_DATABASES}
    assert len(names) == len(DOMAIN_DATABASES) == 8
    with pytest.raises(ValueError, match="unknown domain"):
        settings.database_name("billing")
