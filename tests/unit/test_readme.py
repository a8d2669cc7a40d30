"""The README is part of the contract: its config reference is generated and must stay current."""

from pathlib import Path

from tradeforge.engine.reference import END, START, config_reference, splice

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_config_reference_matches_the_models_and_mixins() -> None:
    text = README.read_text(encoding="utf-8")
    assert START in text and END in text
    assert splice(text, config_reference()) == text, (
        "README config reference is stale: run `python -m tradeforge.engine.reference README.md`"
    )


def test_readme_shows_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert "make demo" in text and "make test" in text


def test_readme_documents_every_result_file_field() -> None:
    text = README.read_text(encoding="utf-8")
    for field in ("tradeforge_version", "start_value", "final_value", "max_drawdown", "exit_reason", "equity"):
        assert f"`{field}" in text or f"metrics.{field}" in text, field
