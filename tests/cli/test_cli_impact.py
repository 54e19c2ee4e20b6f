"""The `impact` CLI subcommand (cannabis_market.cli.impact), run in-process through `cli.main`."""

from __future__ import annotations

import json

import pytest
from test_impact import daily_frame, vignette_data

from cannabis_market import cli


def _run(argv: list[str]) -> int:
    return cli.main(argv)


@pytest.fixture
def vignette_csv(tmp_path):
    frame, _ = vignette_data(seed=2024)
    path = tmp_path / "series.csv"
    frame.write_csv(path)
    return path


def test_cli_text_output(vignette_csv, capsys) -> None:
    rc = _run(["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--controls", "x1",
               "--pre", "1:70", "--post", "71:100", "--sims", "300"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "Average" in out and "Cumulative" in out and "Absolute effect" in out
    assert "strong evidence" in out and "p < 1/301" in out


def test_cli_json_output_parses(vignette_csv, capsys) -> None:
    rc = _run(["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--controls", "x1",
               "--pre", "1:70", "--post", "71:100", "--sims", "200", "--seed", "3", "--json"])  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    payload = json.loads(out)
    assert set(payload) >= {"average", "cumulative", "p_value", "alpha", "n_sims"}
    assert payload["n_sims"] == 200 and payload["alpha"] == 0.05
    assert set(payload["average"]) == {
        "actual", "predicted", "predicted_lo", "predicted_hi", "abs_effect", "abs_effect_lo", "abs_effect_hi",
        "rel_effect", "rel_effect_lo", "rel_effect_hi",
    }  # fmt: skip
    assert payload["average"]["abs_effect_lo"] <= 10 <= payload["average"]["abs_effect_hi"]
    assert 0 < payload["p_value"] < 0.05


def test_cli_daily_dates(tmp_path, capsys) -> None:
    path = tmp_path / "daily.csv"
    daily_frame(n=90, n_post=20).write_csv(path)
    rc = _run(["impact", str(path), "--y", "sales", "--controls", "ctl_a, ctl_b",
               "--pre", "2022-03-01:2022-05-09", "--post", "2022-05-10:2022-05-29", "--sims", "200", "--json"])  # fmt: skip
    assert rc == 0
    assert json.loads(capsys.readouterr().out)["seasonality"] == 7


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--y", "zz", "--pre", "1:70", "--post", "71:100"], "'zz' not present"),
        (["--y", "y", "--controls", "x1,x9", "--pre", "1:70", "--post", "71:100"], "'x9' not present"),
        (["--y", "y", "--pre", "1-70", "--post", "71:100"], "START:END"),
        (["--y", "y", "--pre", "1:70", "--post", "50:100"], "overlap"),
        (["--y", "y", "--pre", "1:70", "--post", "71:100", "--alpha", "1.5"], "alpha"),
        (["--y", "y", "--pre", "1:70", "--post", "71:100", "--sims", "10"], "n_sims"),
        (["--y", "y", "--pre", "a:b", "--post", "71:100"], "integer"),
    ],
)
def test_cli_bad_input_exits_2_with_clean_message(vignette_csv, capsys, argv, match) -> None:
    rc = _run(["impact", str(vignette_csv), "--date-col", "t", *argv])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    assert captured.err.startswith("error: ") and match in captured.err
    assert "Traceback" not in captured.err and len(captured.err.strip().splitlines()) <= 3


def test_cli_missing_and_unreadable_files(tmp_path, capsys) -> None:
    rc = _run(["impact", str(tmp_path / "nope.csv"), "--y", "y", "--pre", "1:2", "--post", "3:4"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: file not found") and "Traceback" not in err
    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"t,y\n1,2\n\xff\xfe\x00oops,3\n")
    rc = _run(["impact", str(bad), "--y", "y", "--date-col", "t", "--pre", "1:2", "--post", "3:4"])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: cannot read CSV") and len(err.strip().splitlines()) == 1


def test_cli_help_mentions_the_essentials(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["impact", "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for word in (
        "--pre",
        "--post",
        "--controls",
        "--json",
        "--model",
        "counterfactual",
        "START:END",
        "exit status",
    ):
        assert word in out


def test_main_cli_dispatches_impact(vignette_csv, capsys) -> None:
    rc = cli.main(
        ["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--pre", "1:70", "--post", "60:100"]
    )
    assert rc == 2 and capsys.readouterr().err.startswith("error: ")


@pytest.mark.parametrize("model", ["regression", "state_space"])
def test_cli_model_flag_is_passed_on_and_reported(vignette_csv, capsys, model) -> None:
    rc = _run(["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--controls", "x1",
               "--pre", "1:70", "--post", "71:100", "--sims", "200", "--model", model, "--json"])  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert payload["model"] == model
    assert payload["model_choice"] == "requested"
    [row] = payload["controls_table"]
    assert row["control"] == "x1" and set(row) == {"control", "inclusion_prob", "coefficient", "weight"}
    assert 1.0 < row["coefficient"] < 1.4  # y = 1.2 x1 + noise
    assert payload["average"]["abs_effect_lo"] <= 10 <= payload["average"]["abs_effect_hi"]


def test_cli_auto_model_says_why(vignette_csv, capsys) -> None:
    rc = _run(["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--controls", "x1",
               "--pre", "1:70", "--post", "71:100", "--sims", "200", "--json"])  # fmt: skip
    payload = json.loads(capsys.readouterr().out)
    assert rc == 0 and payload["model"] in {"regression", "state_space"}
    assert payload["model_choice"] not in {"", "requested"}


def test_cli_unknown_model_is_refused(vignette_csv, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--pre", "1:70", "--post", "71:100",
              "--model", "arima"])  # fmt: skip
    assert exc.value.code == 2 and "--model" in capsys.readouterr().err


def test_cli_bug_is_an_internal_error_not_bad_input(vignette_csv, capsys, monkeypatch) -> None:
    """A ValueError from inside the estimator is a bug: exit 1 and "internal error", never exit 2."""
    import cannabis_market.analysis.impact as impact

    def broken(*args, **kwargs):
        raise ValueError("shapes (3,) and (4,) not aligned")

    monkeypatch.setattr(impact, "estimate_impact", broken)
    monkeypatch.delenv("CM_DEBUG", raising=False)
    rc = _run(
        ["impact", str(vignette_csv), "--date-col", "t", "--y", "y", "--pre", "1:70", "--post", "71:100"]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("internal error: ValueError") and "bug" in err
