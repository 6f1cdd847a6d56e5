"""Training data: Iris as shipped, a CSV's columns and classes, and what a CSV may not be."""

import pytest

from app.training.datasets import DataError, fingerprint, load_csv_dataset, load_iris_dataset


def test_iris_is_the_seed_dataset():
    data = load_iris_dataset()
    assert data.X.shape == (150, 4) and data.class_names == ["setosa", "versicolor", "virginica"]
    assert data.feature_names == ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_csv_columns_and_classes(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,kind\n1,2,y\n3,4,x\n5,6,y\n7,8,x\n")
    data = load_csv_dataset(path, "kind")
    assert data.feature_names == ["a", "b"] and data.class_names == ["x", "y"]
    assert data.y.tolist() == [1, 0, 1, 0] and data.X[2].tolist() == [5.0, 6.0]


def test_fingerprint_changes_with_the_data():
    data = load_iris_dataset()
    same = fingerprint(load_iris_dataset())
    assert fingerprint(data) == same
    data.X[0, 0] += 0.1
    assert fingerprint(data) != same


def test_data_error_for_missing_file(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_csv_dataset(tmp_path / "nope.csv", "x")


def test_data_error_is_one_line_for_an_unreadable_file(tmp_path):
    path = tmp_path / "bin.csv"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError, match="not a readable CSV") as info:
        load_csv_dataset(path, "x")
    assert "\n" not in str(info.value)
