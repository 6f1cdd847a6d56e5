"""``mlops-score``: score a CSV or Parquet file offline with the served models, without the API.

    mlops-score rows.csv scores.parquet                  # the manifest's highest version (e.g. v2)
    mlops-score rows.parquet scores.csv --version v1     # a given version

The models are loaded exactly as the API loads them (``app.serving.registry.load_model_set``): every
pickle's sha256 is checked against the manifest before it is unpickled and, with MODEL_SIGNING_KEY(_FILE),
the manifest's signature first. MODELS_DIR and PREDICT_BACKEND come from the environment like the API's;
--models-dir and --backend override them.

INPUT (``.csv`` or ``.parquet``) must hold the manifest's feature columns, by name and in any order; other
columns are ignored. It is streamed (pyarrow's CSV reader, Parquet record batches) and scored --chunk-rows
rows at a time, so a file larger than memory can be scored. Every feature value must be a finite number
within float32's range, as for the API (``app.features``): the first one that is not (a non-numeric text,
an empty cell, NaN, Inf, 1e39) stops the run, named by its data
row (1-based, the header not counted) and column. OUTPUT gets, per input row and in input order,
``prediction`` (the class index), ``class_name``, one ``proba_<class name>`` per class and
``model_version``, as CSV or Parquet by its suffix. It is written to a temporary file beside it and renamed
onto it only once every row is scored: a failure never leaves partial output, and an existing OUTPUT stays
as it was.

A progress bar goes to stderr when stderr is a terminal (--no-progress turns it off): in rows for Parquet,
whose row count is in its metadata, and in bytes of the file for CSV, whose row count is not known ahead.

Exit status: 0 scored (one summary line on stdout); 2 cannot score (a missing or unreadable file, an
unknown suffix, missing columns, a value that is not a finite number, no data rows, no models, an unknown
version or one that did not load, bad settings), with the reason as one line on stderr:
``mlops-score: error: <reason>``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

# pyarrow and tqdm ship no type information: they are typed Any at this boundary.
import pyarrow as pa  # type: ignore[import-untyped, unused-ignore]
import pyarrow.compute as pc  # type: ignore[import-untyped, unused-ignore]
import pyarrow.csv as pa_csv  # type: ignore[import-untyped, unused-ignore]
import pyarrow.parquet as pq  # type: ignore[import-untyped, unused-ignore]
from tqdm import tqdm  # type: ignore[import-untyped, unused-ignore]

from app.features import first_bad_value
from app.serving.registry import LoadedVersion, ModelSet, load_model_set
from app.settings import Settings, SettingsError

PROG = "mlops-score"
CSV, PARQUET = ".csv", ".parquet"
DEFAULT_CHUNK_ROWS = 100_000
CSV_BLOCK_BYTES = 1 << 20
"""The unit the CSV reader parses in (pyarrow's default); each block becomes one record batch."""
MAX_REASON = 400

Matrix = npt.NDArray[np.float64]

_PYARROW_ROW = re.compile(r"\bRow #(\d+)")
_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to double: invalid value '(.*)'", re.S)


class ScoreError(Exception):
    """Why the file cannot be scored: one line for stderr."""


@dataclass
class Source:
    """An open INPUT: record batches holding the feature columns, and how to show progress through it."""

    batches: Iterator[tuple[Any, int]]
    """(pyarrow record batch, progress position once its rows are scored), in file order."""
    total: int
    """The progress position at the end of the file."""
    unit: str
    """What progress counts: 'rows' or 'B' (bytes of the file)."""


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parser().parse_args(argv)
    started = time.perf_counter()
    try:
        overrides: dict[str, Any] = {}
        if args.models_dir is not None:
            overrides["models_dir"] = args.models_dir
        if args.backend is not None:
            overrides["predict_backend"] = args.backend
        settings = Settings.from_env(**overrides)
        in_format, out_format = _check_paths(args.input, args.output)
        with _registry_logs_not_on_stderr():
            model_set = load_model_set(settings.models_dir, settings.predict_backend, signing_key=settings.signing_key)
        loaded = _pick_version(model_set, args.version, settings.models_dir)
        loaded_in = time.perf_counter() - started
        scoring = time.perf_counter()
        rows = score_file(
            args.input,
            in_format,
            args.output,
            out_format,
            model_set,
            loaded,
            chunk_rows=args.chunk_rows,
            progress=not args.no_progress,
        )
        seconds = time.perf_counter() - scoring
    except KeyboardInterrupt:
        _error("interrupted; no output written")
        return 130
    except (ScoreError, SettingsError) as exc:
        return _error(str(exc))
    except OSError as exc:  # pyarrow's ArrowIOError too: reading or writing, e.g. a full disk
        return _error(_os_reason(exc))
    except pa.ArrowException as exc:  # what pyarrow cannot read (e.g. not a Parquet file)
        return _error(f"cannot read {args.input}: {exc}")
    rate = rows / seconds if seconds > 0 else float("inf")
    print(
        f"Scored {rows:,} rows with model {loaded.version} in {seconds:.2f} s ({rate:,.0f} rows/s; "
        f"models loaded in {loaded_in:.2f} s): {args.output}"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Score a CSV or Parquet file with the served models, offline: no API needed.",
        epilog="Exit status: 0 scored, 2 cannot score (the reason is one line on stderr).",
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="rows to score: a .csv or .parquet file")
    parser.add_argument("output", type=Path, metavar="OUTPUT", help="where the scores go: .csv or .parquet")
    parser.add_argument("--version", help="the model version to score with (default: the manifest's highest)")
    parser.add_argument("--models-dir", type=Path, help="the model set's directory (default: MODELS_DIR or app/models)")
    parser.add_argument(
        "--chunk-rows",
        type=_positive,
        default=DEFAULT_CHUNK_ROWS,
        help=f"rows read and scored at a time (default: {DEFAULT_CHUNK_ROWS})",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (none either when not a TTY)")
    parser.add_argument(
        "--backend", choices=("fast", "sklearn"), help="predictor backend (default: PREDICT_BACKEND or fast)"
    )
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _error(reason: str) -> int:
    """Print ``reason`` as the one stderr line; returns exit status 2."""
    line = " ".join(reason.split())
    if len(line) > MAX_REASON:
        line = line[: MAX_REASON - 1] + "…"
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return 2


def _os_reason(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def _file_format(path: Path, role: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in (CSV, PARQUET):
        raise ScoreError(f"{role} {path}: unknown file type {path.suffix or '(no suffix)'!r}, use .csv or .parquet")
    return suffix


def _check_paths(source: Path, target: Path) -> tuple[str, str]:
    """The formats of INPUT and OUTPUT, after the checks that need no models."""
    in_format = _file_format(source, "INPUT")
    out_format = _file_format(target, "OUTPUT")
    if not source.exists():
        raise ScoreError(f"INPUT {source}: no such file")
    if not source.is_file():
        raise ScoreError(f"INPUT {source}: not a file")
    if not target.parent.is_dir():
        raise ScoreError(f"OUTPUT {target}: directory {target.parent} does not exist")
    if target.is_dir():
        raise ScoreError(f"OUTPUT {target}: is a directory")
    if target.exists() and target.samefile(source):
        raise ScoreError(f"OUTPUT {target} is INPUT: write the scores to another file")
    return in_format, out_format


@contextlib.contextmanager
def _registry_logs_not_on_stderr() -> Iterator[None]:
    """Without logging configured, the registry's log lines would reach stderr through logging's last resort.

    A version that fails to load is reported as this tool's one error line (if it is the one asked for);
    a configured handler (the caller's) still receives every record.
    """
    logger = logging.getLogger("app")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


def _version_key(version: str) -> tuple[tuple[int, int, str], ...]:
    """Natural order: v2 < v10."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version))


def _pick_version(model_set: ModelSet, wanted: str | None, models_dir: Path) -> LoadedVersion:
    """The version to score with: ``wanted``, else the manifest's highest; it must have loaded."""
    listed = sorted(model_set.manifest.get("versions", {}), key=_version_key)
    if not listed:
        reason = model_set.failed.get("manifest", "the manifest lists no model versions")
        raise ScoreError(f"no models in {models_dir}: {reason}")
    version = wanted if wanted is not None else listed[-1]
    if version not in listed:
        raise ScoreError(f"unknown model version {version!r}: {models_dir} has {', '.join(listed)}")
    if version in model_set.failed or version not in model_set.versions:
        reason = model_set.failed.get(version, "not loaded")
        raise ScoreError(f"model {version} in {models_dir} cannot be used: {reason}")
    return model_set.versions[version]


def score_file(
    source: Path,
    in_format: str,
    target: Path,
    out_format: str,
    model_set: ModelSet,
    loaded: LoadedVersion,
    *,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    progress: bool = False,
) -> int:
    """Score every row of ``source`` into ``target``, atomically; returns the number of rows.

    On any failure the temporary file is removed and ``target`` is left as it was.
    """
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    partial = Path(name)
    try:
        rows = _score_into(source, in_format, partial, out_format, model_set, loaded, chunk_rows, progress)
        umask = os.umask(0)
        os.umask(umask)
        partial.chmod(0o666 & ~umask)  # mkstemp's file is 0600; the scores get a new file's usual mode
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return rows


def _score_into(
    source: Path,
    in_format: str,
    partial: Path,
    out_format: str,
    model_set: ModelSet,
    loaded: LoadedVersion,
    chunk_rows: int,
    progress: bool,
) -> int:
    features, classes = model_set.feature_names, model_set.class_names
    schema = output_schema(classes)
    class_names = pa.array(classes, pa.string())
    version = pa.scalar(loaded.version, pa.string())
    with contextlib.ExitStack() as stack:
        if in_format == CSV:
            opened = open_csv(source, features)
        else:
            parquet = stack.enter_context(pq.ParquetFile(source))
            opened = open_parquet(parquet, source, features, chunk_rows)
        bar = stack.enter_context(
            tqdm(
                total=opened.total,
                unit=opened.unit,
                unit_scale=True,
                unit_divisor=1024 if opened.unit == "B" else 1000,
                desc=PROG,
                file=sys.stderr,
                disable=None if progress else True,  # None: shown on a terminal only
            )
        )
        writer = stack.enter_context(_writer(partial, out_format, schema))
        chunks = stack.enter_context(
            contextlib.closing(rechunk(((_matrix(batch, features), at) for batch, at in opened.batches), chunk_rows))
        )
        rows = 0
        for X, position in chunks:
            check_finite(X, rows, features, source)
            proba = np.asarray(loaded.predictor.predict_proba(X), dtype=np.float64)
            predicted = pa.array(proba.argmax(axis=1), pa.int64())
            columns = [predicted, class_names.take(predicted)]
            columns += [pa.array(np.ascontiguousarray(proba[:, k])) for k in range(len(classes))]
            columns.append(pa.repeat(version, len(X)))
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=schema))
            rows += len(X)
            bar.set_postfix_str(f"{rows:,} rows", refresh=False)
            bar.update(position - bar.n)
        if rows == 0:
            raise ScoreError(f"INPUT {source}: no data rows to score")
        bar.update(opened.total - bar.n)
    return rows


def output_schema(class_names: list[str]) -> Any:
    """The scores' columns: prediction, class_name, proba_<class> per class, model_version."""
    fields = [pa.field("prediction", pa.int64()), pa.field("class_name", pa.string())]
    fields += [pa.field(f"proba_{name}", pa.float64()) for name in class_names]
    fields.append(pa.field("model_version", pa.string()))
    return pa.schema(fields)


def _writer(path: Path, out_format: str, schema: Any) -> Any:
    if out_format == CSV:
        return pa_csv.CSVWriter(str(path), schema)
    return pq.ParquetWriter(str(path), schema)


def _missing(source: Path, features: list[str], columns: list[str]) -> None:
    missing = [name for name in features if name not in columns]
    if missing:
        raise ScoreError(
            f"INPUT {source}: missing feature column{'s' if len(missing) > 1 else ''} {', '.join(missing)} "
            f"(the models take {', '.join(features)})"
        )


def open_csv(source: Path, features: list[str]) -> Source:
    """Stream ``source``'s feature columns as float64 batches, one per block of CSV_BLOCK_BYTES."""
    # The header alone, first: a missing column is named, and other columns are never converted.
    peek = pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES, use_threads=False)
    try:
        header = pa_csv.open_csv(str(source), read_options=peek)
    except pa.ArrowInvalid as exc:
        raise _csv_error(source, [], exc) from None
    columns: list[str] = list(header.schema.names)
    header.close()
    _missing(source, features, columns)
    size = source.stat().st_size

    def batches() -> Iterator[tuple[Any, int]]:
        options = pa_csv.ConvertOptions(include_columns=features, column_types=dict.fromkeys(features, pa.float64()))
        try:
            reader = pa_csv.open_csv(
                str(source), read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=options
            )
            with reader:
                for block, batch in enumerate(reader, start=1):
                    # Block k ends within one row before byte k * CSV_BLOCK_BYTES (the last block at the end of
                    # the file): progress in bytes of the file, as the number of rows is not known ahead.
                    yield batch, min(block * CSV_BLOCK_BYTES, size)
        except pa.ArrowInvalid as exc:
            raise _csv_error(source, columns, exc) from None

    return Source(batches(), size, "B")


def _csv_error(source: Path, columns: list[str], exc: Exception) -> Exception:
    """A non-numeric cell as a ScoreError naming its row and column; other errors as pyarrow words them."""
    match = _CONVERSION_ERROR.search(str(exc))
    if match is None or int(match.group(1)) >= len(columns):
        # pyarrow counts the header as row 1 (and numbers rows only in the first blocks it parses).
        reason = _PYARROW_ROW.sub(lambda row: f"row {int(row.group(1)) - 1}", str(exc))
        return ScoreError(f"cannot read {source}: {reason}")
    column = columns[int(match.group(1))]
    found = _first_non_number(source, column)
    if found is None:
        return ScoreError(f"INPUT {source}: column {column!r}: {match.group(2)!r} is not a number")
    row, value = found
    return ScoreError(f"INPUT {source}: row {row}, column {column!r}: {value!r} is not a number")


def _first_non_number(source: Path, column: str) -> tuple[int, str] | None:
    """The first (1-based data row, text) of ``column`` that does not read as a number (a second, text pass)."""
    options = pa_csv.ConvertOptions(
        include_columns=[column], column_types={column: pa.string()}, strings_can_be_null=True
    )
    offset = 0
    with pa_csv.open_csv(
        str(source), read_options=pa_csv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=options
    ) as reader:
        for batch in reader:
            values = pc.utf8_trim_whitespace(batch.column(0))
            if not _reads_as_numbers(values):
                low, high = 0, len(values)  # the first bad row is the shortest failing prefix's last
                while high - low > 1:
                    middle = (low + high) // 2
                    if _reads_as_numbers(values.slice(0, middle)):
                        low = middle
                    else:
                        high = middle
                return offset + high, str(batch.column(0)[high - 1].as_py())
            offset += batch.num_rows
    return None


def _reads_as_numbers(values: Any) -> bool:
    try:
        pc.cast(values, pa.float64())
    except pa.ArrowInvalid:
        return False
    return True


def open_parquet(parquet: Any, source: Path, features: list[str], chunk_rows: int) -> Source:
    """Stream an open ParquetFile's feature columns, ``chunk_rows`` rows a batch; they must be numeric."""
    schema = parquet.schema_arrow
    _missing(source, features, list(schema.names))
    for name in features:
        kind = schema.field(name).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)):
            raise ScoreError(f"INPUT {source}: column {name!r} holds {kind}, not numbers")

    def batches() -> Iterator[tuple[Any, int]]:
        done = 0
        for batch in parquet.iter_batches(batch_size=chunk_rows, columns=features):
            done += batch.num_rows
            yield batch, done

    return Source(batches(), int(parquet.metadata.num_rows), "rows")


def _matrix(batch: Any, features: list[str]) -> Matrix:
    """A record batch's feature columns as float64 (rows, features) in ``features`` order; nulls become NaN."""
    X = np.empty((batch.num_rows, len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = batch.column(name)
        if column.type != pa.float64():
            column = pc.cast(column, pa.float64())
        X[:, j] = column.to_numpy(zero_copy_only=False)
    return X


def rechunk(blocks: Iterator[tuple[Matrix, int]], chunk_rows: int) -> Generator[tuple[Matrix, int]]:
    """``blocks`` regrouped into chunks of exactly ``chunk_rows`` rows (the last may be smaller), in order.

    Each block comes with the progress position reached once its rows are scored; each chunk carries the
    position of the last block it completes, so progress never runs ahead of the rows scored.
    """
    pending: list[Matrix] = []
    pending_rows = 0
    completed = 0
    for block, position in blocks:
        start = 0
        if len(block) == 0:
            completed = position
        while start < len(block):
            take = min(chunk_rows - pending_rows, len(block) - start)
            pending.append(block[start : start + take])
            pending_rows += take
            start += take
            if start == len(block):
                completed = position
            if pending_rows == chunk_rows:
                yield (pending[0] if len(pending) == 1 else np.concatenate(pending)), completed
                pending, pending_rows = [], 0
    if pending:
        yield (pending[0] if len(pending) == 1 else np.concatenate(pending)), completed


def check_finite(X: Matrix, offset: int, features: list[str], source: Path) -> None:
    """Refuse the first value that breaks the feature rule (``app.features``), naming its data row and column."""
    bad = first_bad_value(X)
    if bad is not None:
        (row, column), reason = bad
        raise ScoreError(
            f"INPUT {source}: row {offset + row + 1}, column {features[column]!r}: the value {reason}; "
            "every feature must be a finite number within float32's range"
        )


if __name__ == "__main__":
    sys.exit(main())
