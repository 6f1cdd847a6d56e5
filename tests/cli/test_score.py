"""mlops-score: CSV and Parquet in and out against scikit-learn, versions, progress, one-line errors, atomic output."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from app.cli import score
from app.cli.score import main, rechunk
from app.serving.registry import load_model_set
from app.training.datasets import load_iris_dataset

CONSOLE_SCRIPT = Path(sys.executable).parent / "mlops-score"
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]
COLUMNS = ["prediction", "class_name", *(f"proba_{name}" for name in CLASSES), "model_version"]
ROWS = 100


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in ("MODELS_DIR", "MODEL_SIGNING_KEY", "MODEL_SIGNING_KEY_FILE", "PREDICT_BACKEND"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def rows() -> np.ndarray:
    """Iris-like rows in the manifest's feature order: Iris with noise, so probabilities vary."""
    rng = np.random.default_rng(7)
    iris = load_iris_dataset().X
    picked = iris[rng.choice(len(iris), size=ROWS, replace=False)]
    return np.round(picked + rng.normal(0, 0.3, size=picked.shape), 2)


def table_of(rows: np.ndarray, **changes: list) -> pa.Table:
    """The rows as a table with the features in another order than the manifest's, between extra columns."""
    columns = {
        "id": pa.array(range(len(rows))),
        "petal_width": rows[:, 3],
        "sepal_length": rows[:, 0],
        "comment": pa.array([f"row {i}, fine" for i in range(len(rows))]),
        "petal_length": rows[:, 2],
        "sepal_width": rows[:, 1],
    }
    columns.update(changes)
    return pa.table(columns)


def write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".csv":
        pa_csv.write_csv(table, path)
    else:
        pq.write_table(table, path, row_group_size=30)  # several row groups
    return path


def read(path: Path) -> pa.Table:
    return pa_csv.read_csv(path) if path.suffix == ".csv" else pq.read_table(path)


def sklearn_proba(models_dir: Path, version: str, rows: np.ndarray) -> np.ndarray:
    return load_model_set(models_dir, "sklearn").versions[version].estimator.predict_proba(rows)


def assert_scores(output: Path, expected: np.ndarray, version: str) -> None:
    table = read(output)
    assert table.column_names == COLUMNS
    proba = np.column_stack([table.column(f"proba_{name}").to_numpy() for name in CLASSES])
    predicted = table.column("prediction").to_numpy()
    assert len(predicted) == len(expected)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-6)
    assert (predicted == expected.argmax(axis=1)).all()
    assert table.column("class_name").to_pylist() == [CLASSES[i] for i in predicted]
    assert set(table.column("model_version").to_pylist()) == {version}
    assert len(set(predicted.tolist())) == len(CLASSES)  # the rows exercise every class


@pytest.mark.parametrize("in_suffix", [".csv", ".parquet"])
@pytest.mark.parametrize("out_suffix", [".csv", ".parquet"])
def test_scores_equal_scikit_learn_in_chunks(models_dir, rows, tmp_path, capsys, monkeypatch, in_suffix, out_suffix):
    monkeypatch.setattr(score, "CSV_BLOCK_BYTES", 512)  # several CSV blocks, none aligned with the chunks
    source = write(table_of(rows), tmp_path / f"rows{in_suffix}")
    output = tmp_path / f"scores{out_suffix}"
    assert main([str(source), str(output), "--models-dir", str(models_dir), "--chunk-rows", "7"]) == 0
    assert_scores(output, sklearn_proba(models_dir, "v2", rows), "v2")
    out, err = capsys.readouterr()
    assert out.startswith(f"Scored {ROWS} rows with model v2 in ") and "rows/s" in out and out.endswith(f"{output}\n")
    assert len(out.splitlines()) == 1 and err == ""  # stderr is not a terminal: no progress bar
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["models", source.name, output.name])
    umask = os.umask(0)
    os.umask(umask)
    assert output.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize("backend", ["fast", "sklearn"])
@pytest.mark.parametrize("chunk_rows", ["1", "100", "100000"])
def test_backends_and_chunk_sizes(models_dir, rows, tmp_path, chunk_rows, backend):
    """Chunks over 8 rows take the fast backend's compiled batch path (tl2cgen), smaller ones its row path."""
    source = write(table_of(rows), tmp_path / "rows.parquet")
    output = tmp_path / "scores.parquet"
    args = [str(source), str(output), "--models-dir", str(models_dir), "--backend", backend, "--chunk-rows"]
    assert main([*args, chunk_rows]) == 0
    assert_scores(output, sklearn_proba(models_dir, "v2", rows), "v2")


def test_version_v1_and_the_environment(models_dir, rows, tmp_path, monkeypatch):
    monkeypatch.setenv("MODELS_DIR", str(models_dir))
    source = write(table_of(rows), tmp_path / "rows.csv")
    output = tmp_path / "scores.csv"
    assert main([str(source), str(output), "--version", "v1", "--no-progress"]) == 0
    expected = sklearn_proba(models_dir, "v1", rows)
    assert_scores(output, expected, "v1")
    assert not np.allclose(expected, sklearn_proba(models_dir, "v2", rows))  # v1 really is another model


def test_unknown_version_names_the_known_ones(models_dir, rows, tmp_path, capsys):
    source = write(table_of(rows), tmp_path / "rows.csv")
    assert main([str(source), str(tmp_path / "s.csv"), "--models-dir", str(models_dir), "--version", "v9"]) == 2
    err = capsys.readouterr().err
    assert err == f"mlops-score: error: unknown model version 'v9': {models_dir} has v1, v2\n"
    assert not (tmp_path / "s.csv").exists()


def test_the_highest_version_is_the_default_in_natural_order():
    assert max(["v2", "v10", "v9"], key=score._version_key) == "v10"


def corrupt(models_dir: Path) -> None:
    with (models_dir / "model_v2.pkl").open("ab") as f:
        f.write(b"tampered")


def _csv(text: str):
    return lambda path, rows: path.write_text(text)


def _table(**changes):
    return lambda path, rows: write(table_of(rows, **changes), path)


def _replace(column: int, row: int, value: float):
    def make(path, rows):
        changed = rows.copy()
        changed[row - 1, column] = value
        write(table_of(changed), path)

    return make


def _csv_cell(row: int, column: str, text: str):
    def make(path, rows):
        table = table_of(rows)
        values = [repr(v) for v in table.column(column).to_pylist()]
        values[row - 1] = text
        write(table.set_column(table.schema.get_field_index(column), column, pa.array(values)), path)

    return make


HEADER = ",".join(FEATURES)
BAD_INPUTS = {
    "missing file": ("rows.csv", None, "INPUT {input}: no such file"),
    "unknown input suffix": (
        "rows.txt",
        _csv(f"{HEADER}\n1,2,3,4\n"),
        "unknown file type '.txt', use .csv or .parquet",
    ),
    "unknown output suffix": ("rows.csv", _csv(f"{HEADER}\n1,2,3,4\n"), "OUTPUT {output}: unknown file type '.json'"),
    "unparsable csv": (
        "rows.csv",
        _csv(f"{HEADER}\n1,2,3,4\n1,2,3,4,5\n"),
        "cannot read {input}: CSV parse error: row 2: Expected 4 columns, got 5",
    ),
    "not parquet": ("rows.parquet", _csv(f"{HEADER}\n1,2,3,4\n"), "cannot read {input}: Parquet magic bytes"),
    "missing columns csv": (
        "rows.csv",
        _csv("sepal_length,petal_length,x\n1,2,3\n"),
        "INPUT {input}: missing feature columns sepal_width, petal_width (the models take sepal_length, ",
    ),
    "missing column parquet": (
        "rows.parquet",
        lambda path, rows: write(table_of(rows).drop_columns(["petal_width"]), path),
        "INPUT {input}: missing feature column petal_width (",
    ),
    "non-numeric csv": (
        "rows.csv",
        _csv_cell(57, "petal_length", "abc"),
        "row 57, column 'petal_length': 'abc' is not",
    ),
    "non-numeric parquet": (
        "rows.parquet",
        _table(sepal_width=pa.array(["3.1"] * ROWS)),
        "INPUT {input}: column 'sepal_width' holds string, not numbers",
    ),
    "empty cell csv": (
        "rows.csv",
        _csv_cell(40, "sepal_width", ""),
        "row 40, column 'sepal_width': the value is missing or NaN",
    ),
    "blank cell csv": (
        "rows.csv",
        _csv(f"{HEADER}\n1,2,3,4\n1,,3,4\n"),
        "row 2, column 'sepal_width': the value is missing",
    ),
    "nan csv": (
        "rows.csv",
        _replace(0, 12, np.nan),
        "INPUT {input}: row 12, column 'sepal_length': the value is missing or NaN",
    ),
    "inf csv": ("rows.csv", _replace(3, 99, np.inf), "row 99, column 'petal_width': the value is not finite"),
    "-inf parquet": (
        "rows.parquet",
        _replace(2, 100, -np.inf),
        "row 100, column 'petal_length': the value is not finite",
    ),
    "null parquet": (
        "rows.parquet",
        _table(petal_width=pa.array([1.0] * 29 + [None] * (ROWS - 29))),
        "row 30, column 'petal_width': the value is missing or NaN",
    ),
    "beyond float32 csv": ("rows.csv", _replace(1, 7, 1e39), "row 7, column 'sepal_width': the value is too large"),
    "empty csv file": ("rows.csv", _csv(""), "cannot read {input}: Empty CSV file"),
    "header only csv": ("rows.csv", _csv(f"id,{HEADER}\n"), "INPUT {input}: no data rows to score"),
    "no rows parquet": ("rows.parquet", lambda path, rows: write(table_of(rows[:0]), path), "no data rows to score"),
    "no models": ("rows.csv", _csv(f"{HEADER}\n1,2,3,4\n"), "no models in {empty}: manifest.json not found"),
    "failed version": ("rows.csv", _csv(f"{HEADER}\n1,2,3,4\n"), "model v2 in {models} cannot be used: "),
    "unsigned with a key": ("rows.csv", _csv(f"{HEADER}\n1,2,3,4\n"), "manifest.json.sig is missing"),
}


@pytest.mark.parametrize("existing", [False, True], ids=["no-output", "existing-output"])
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_exit_two_and_no_output(models_dir, rows, tmp_path, capsys, monkeypatch, case, existing):
    name, make, reason = BAD_INPUTS[case]
    work = tmp_path / "work"
    work.mkdir()
    source = work / name
    if make is not None:
        make(source, rows)
    output = work / ("scores.json" if case == "unknown output suffix" else "scores.csv")
    if existing:
        output.write_text("earlier scores\n")
    before = sorted(work.iterdir())
    models = tmp_path / "empty" if case == "no models" else models_dir
    if case == "failed version":
        corrupt(models_dir)
    if case == "unsigned with a key":
        monkeypatch.setenv("MODEL_SIGNING_KEY", "k" * 40)
    assert main([str(source), str(output), "--models-dir", str(models), "--chunk-rows", "7"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("mlops-score: error: "), err
    assert reason.format(input=source, output=output, empty=models, models=models_dir) in err
    assert "Traceback" not in err
    assert sorted(work.iterdir()) == before  # no temporary file left behind
    if existing:
        assert output.read_text() == "earlier scores\n"
    else:
        assert not output.exists()


def test_output_cannot_be_the_input(models_dir, rows, tmp_path, capsys):
    source = write(table_of(rows), tmp_path / "rows.csv")
    before = source.read_bytes()
    assert main([str(source), str(source), "--models-dir", str(models_dir)]) == 2
    assert "is INPUT" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_a_non_numeric_cell_is_found_across_csv_blocks(models_dir, rows, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(score, "CSV_BLOCK_BYTES", 256)
    source = tmp_path / "rows.csv"
    _csv_cell(93, "sepal_length", "5,1")(source, rows)  # a quoted comma: a value, not a parse error
    assert main([str(source), str(tmp_path / "s.parquet"), "--models-dir", str(models_dir)]) == 2
    assert "row 93, column 'sepal_length': '5,1' is not a number" in capsys.readouterr().err


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_progress_bar_on_a_terminal_only(models_dir, rows, tmp_path, monkeypatch, suffix):
    source = write(table_of(rows), tmp_path / f"rows{suffix}")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main([str(source), str(tmp_path / "a.csv"), "--models-dir", str(models_dir), "--chunk-rows", "10"]) == 0
    bar = terminal.getvalue()
    assert "mlops-score: 100%" in bar and f"{ROWS:,} rows" in bar, bar
    assert ("B/" if suffix == ".csv" else f"{ROWS}/{ROWS}") in bar  # CSV counts bytes, Parquet rows
    quiet = Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert main([str(source), str(tmp_path / "b.csv"), "--models-dir", str(models_dir), "--no-progress"]) == 0
    assert quiet.getvalue() == ""


def test_rechunk_keeps_order_sizes_and_progress_behind_the_rows():
    blocks = [np.full((n, 2), i, dtype=np.float64) for i, n in enumerate([5, 0, 3, 9, 1])]
    positions = [10, 20, 30, 40, 50]
    chunks = list(rechunk(iter(zip(blocks, positions, strict=True)), 4))
    assert [len(c) for c, _ in chunks] == [4, 4, 4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([c for c, _ in chunks]), np.concatenate(blocks))
    assert [p for _, p in chunks] == [0, 30, 30, 30, 50]  # a block counts once all its rows are scored


def test_console_script(models_dir, rows, tmp_path):
    source = write(table_of(rows), tmp_path / "rows.csv")
    output = tmp_path / "scores.parquet"
    env = {**os.environ, "MODELS_DIR": str(models_dir)}
    result = subprocess.run(
        [str(CONSOLE_SCRIPT), str(source), str(output), "--chunk-rows", "7"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert f"Scored {ROWS} rows with model v2 in " in result.stdout and "Traceback" not in result.stderr
    assert_scores(output, sklearn_proba(models_dir, "v2", rows), "v2")

    missing = subprocess.run(
        [str(CONSOLE_SCRIPT), str(tmp_path / "nope.csv"), str(tmp_path / "x.csv")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr == f"mlops-score: error: INPUT {tmp_path / 'nope.csv'}: no such file\n"
