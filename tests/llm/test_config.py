"""Model config: YAML file, vendor defaults, environment shortcuts, errors with field and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from anvyl.orchestrator.llm import ModelConfigError, ModelRouter, load_model_config

EXAMPLE = """\
models:
  - name: gpt-oss
    provider: openai
    base_url: http://gpt-oss:8000/v1
    model: openai/gpt-oss-20b
    timeout: 120               # total seconds for one call
    first_token_timeout: 20
  - name: mlx
    provider: openai
    base_url: http://127.0.0.1:8081/v1
    model: mlx-community/gpt-oss-20b-MXFP4-Q8
  - name: claude
    provider: anthropic
    model: claude-3-haiku-20240307
    api_key_env: ANTHROPIC_API_KEY
  - name: tiny
    provider: local
    runner: mlx
    model: /models/tiny
routing:
  primary: gpt-oss
  fallbacks: [mlx, claude]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "anvyl.yaml"
    path.write_text(text)
    return path


def test_example_config_loads(tmp_path: Path) -> None:
    config = load_model_config(_write(tmp_path, EXAMPLE), {"ANTHROPIC_API_KEY": "sk-ant-secret"})
    assert [e.name for e in config.chain()] == ["gpt-oss", "mlx", "claude"]
    gpt = config.endpoint("gpt-oss")
    assert (gpt.timeout, gpt.first_token_timeout) == (120, 20)
    claude = config.endpoint("claude")
    assert claude.base_url == "https://api.anthropic.com"
    assert claude.api_key is not None and claude.api_key.get_secret_value() == "sk-ant-secret"
    assert config.endpoint("tiny").runner == "mlx"
    router = ModelRouter.from_config(config)
    assert [e.name for e in router.endpoints] == ["gpt-oss", "mlx", "claude"]


def test_api_keys_are_never_printed(tmp_path: Path) -> None:
    config = load_model_config(_write(tmp_path, EXAMPLE), {"ANTHROPIC_API_KEY": "sk-ant-secret"})
    claude = config.endpoint("claude")
    assert "sk-ant-secret" not in repr(claude)
    assert "sk-ant-secret" not in str(config.model_dump())
    assert "sk-ant-secret" not in config.model_dump_json()


def test_vendor_base_urls_and_key_env_defaults(tmp_path: Path) -> None:
    text = "models:\n" + "".join(
        f"  - {{name: {v}, provider: {v}, model: m}}\n"
        for v in ["openai", "xai", "groq", "ollama", "lmstudio"]
    )
    config = load_model_config(_write(tmp_path, text), {"XAI_API_KEY": "xai-key"})
    urls = {e.name: e.base_url for e in config.models}
    assert urls == {
        "openai": "https://api.openai.com/v1",
        "xai": "https://api.x.ai/v1",
        "groq": "https://api.groq.com/openai/v1",
        "ollama": "http://localhost:11434/v1",
        "lmstudio": "http://localhost:1234/v1",
    }
    assert config.endpoint("xai").api_key is not None
    assert config.endpoint("openai").api_key is None
    assert config.endpoint("ollama").api_key_env is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (EXAMPLE.replace("timeout: 120", "timeout: soon"), ["anvyl.yaml:6:", "models.0.timeout"]),
        (
            EXAMPLE.replace("provider: anthropic", "provider: anthropik"),
            ["anvyl.yaml:13:", "models.2.provider"],
        ),
        (
            EXAMPLE.replace("    model: mlx-community/gpt-oss-20b-MXFP4-Q8\n", ""),
            ["anvyl.yaml:8:", "models.1.model", "Field required"],
        ),
        (
            EXAMPLE.replace("first_token_timeout: 20", "first_token_timout: 20"),
            ["anvyl.yaml:7:", "models.0.first_token_timout", "Extra inputs"],
        ),
        (EXAMPLE.replace("    runner: mlx\n", ""), ["anvyl.yaml:16:", "models.3", "runner"]),
        (
            EXAMPLE.replace("fallbacks: [mlx, claude]", "fallbacks: [mlx, gpt5]"),
            ["anvyl.yaml:20:", "routing", "gpt5"],
        ),
        (
            EXAMPLE.replace("  primary: gpt-oss", "  primary: [gpt-oss]"),
            ["anvyl.yaml:21:", "routing.primary"],
        ),
    ],
)
def test_bad_config_names_field_and_line(tmp_path: Path, text: str, expected: list[str]) -> None:
    with pytest.raises(ModelConfigError) as error:
        load_model_config(_write(tmp_path, text), {})
    for fragment in expected:
        assert fragment in str(error.value)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match=r"anvyl.yaml:3: invalid YAML"):
        load_model_config(_write(tmp_path, "models:\n  - name: a\n   provider: [\n"), {})


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="cannot read"):
        load_model_config(tmp_path / "nope.yaml", {})


def test_environment_shortcuts_without_a_file() -> None:
    environ = {
        "ANVYL_GPT_OSS_URL": "http://gpu:8000/v1",
        "ANVYL_LMSTUDIO_URL": "http://mac:1234/v1",
        "ANVYL_LMSTUDIO_MODEL": "qwen3-8b",
        "OLLAMA_URL": "http://box:11434",
        "OLLAMA_MODEL": "llama3",
        "OPENAI_API_KEY": "sk-openai",
        "ANTHROPIC_API_KEY": "sk-ant",
        "XAI_API_KEY": "xai",
        "GROQ_API_KEY": "gsk",
    }
    config = load_model_config(None, environ)
    assert [e.name for e in config.chain()] == [
        "gpt-oss",
        "lmstudio",
        "ollama",
        "openai",
        "anthropic",
        "xai",
        "groq",
    ]
    assert config.endpoint("ollama").base_url == "http://box:11434/v1"
    assert config.endpoint("lmstudio").model == "qwen3-8b"
    assert config.endpoint("openai").api_key.get_secret_value() == "sk-openai"  # type: ignore[union-attr]
    assert config.endpoint("groq").base_url == "https://api.groq.com/openai/v1"


def test_nothing_configured_gives_an_empty_chain() -> None:
    config = load_model_config(None, {})
    assert config.chain() == []


def test_file_routing_is_kept_and_shortcuts_stay_addressable(tmp_path: Path) -> None:
    config = load_model_config(_write(tmp_path, EXAMPLE), {"GROQ_API_KEY": "gsk"})
    assert "groq" not in [e.name for e in config.chain()]
    assert config.endpoint("groq").provider == "groq"


def test_vendor_rows_fill_runner_and_demand_a_url_where_they_have_none(tmp_path: Path) -> None:
    config = load_model_config(
        _write(tmp_path, "models:\n  - {name: t, provider: mlx, model: m}\n"), {}
    )
    assert (config.endpoint("t").runner, config.endpoint("t").api_shape) == ("mlx", "local_runner")
    for text, message in [
        ("models:\n  - {name: g, provider: gpt-oss, model: m}\n", "base_url is required"),
        ("models:\n  - {name: x, provider: mistral, model: m}\n", "known: gpt-oss, lmstudio"),
    ]:
        with pytest.raises(ModelConfigError, match=message):
            load_model_config(_write(tmp_path, text), {})
