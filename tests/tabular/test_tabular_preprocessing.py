"""The fitted tabular preprocessing: statistics from the training rows, independent references, every bad input."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.preprocessing import QuantileTransformer

from byol.data.tabular_preprocessing import MISSING_INDEX, UNKNOWN_INDEX, TabularPreprocessing, category_keys


def table(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({
        "income": rng.lognormal(3, 1, n),
        "age": rng.integers(18, 90, n),
        "city": rng.choice(["paris", "lyon", "nice"], n),
        "member": rng.choice([True, False], n),
        "label": rng.choice(["yes", "no"], n),
    })


def test_column_types_are_inferred_and_features_ordered_numeric_first():
    pre = TabularPreprocessing.fit(table(), target="label")
    assert pre.feature_names == ["income", "age", "city", "member"]
    assert pre.num_numeric == 2 and pre.cardinalities == [3 + 2, 2 + 2]
    assert pre.task == "classification" and pre.num_classes == 2


def test_declared_types_override_inference():
    pre = TabularPreprocessing.fit(table(), target="label", categorical=["age"], numeric=["member"])
    assert [c.name for c in pre.numeric] == ["member", "income"]
    assert [c.name for c in pre.categorical] == ["age", "city"]


def test_standardisation_uses_training_statistics():
    train, other = table(seed=0), table(seed=1)
    pre = TabularPreprocessing.fit(train, target="label", numeric_transform="standard")
    x = pre.transform(other)["num"]
    expected = (other["income"] - train["income"].mean()) / train["income"].std(ddof=0)
    torch.testing.assert_close(x[:, 0], torch.tensor(expected.to_numpy(), dtype=torch.float32))


def test_quantile_transform_matches_scikit_learn():
    train, other = table(500, seed=0), table(300, seed=1)
    other.loc[0, "income"] = 1e9  # beyond the training range: clipped like scikit-learn
    pre = TabularPreprocessing.fit(train, target="label")
    n_quantiles = len(pre.numeric[0].quantiles)
    assert n_quantiles == max(min(500 // 30, 1000), 10)
    reference = QuantileTransformer(n_quantiles=n_quantiles, output_distribution="normal", subsample=None)
    reference.fit(train[["income", "age"]].to_numpy(dtype=float))
    expected = reference.transform(other[["income", "age"]].to_numpy(dtype=float))
    torch.testing.assert_close(pre.transform(other)["num"], torch.tensor(expected, dtype=torch.float32))


def test_categories_map_to_sorted_indices_after_the_reserved_ones():
    pre = TabularPreprocessing.fit(table(), target="label")
    rows = pd.DataFrame({"income": [1.0, 2.0], "age": [30, 40], "city": ["lyon", "paris"], "member": [False, True],
                         "label": ["no", "yes"]})
    cat = pre.transform(rows)["cat"]
    # sorted: lyon, nice, paris -> 2, 3, 4; False, True -> 2, 3
    assert cat.tolist() == [[2, 2], [4, 3]]
    assert pre.labels(rows).tolist() == [0, 1]


def test_unseen_category_maps_to_unknown_with_a_warning_naming_the_column():
    pre = TabularPreprocessing.fit(table(), target="label")
    rows = table(3, seed=5).assign(city=["paris", "marseille", "lyon"])
    with pytest.warns(UserWarning, match=r"column 'city' of new rows: 1 rows hold categories not seen.*'marseille'"):
        cat = pre.transform(rows, source="new rows")["cat"]
    assert cat[1, 0] == UNKNOWN_INDEX and cat[0, 0] == 4


def test_missing_values_become_nan_and_the_missing_index():
    train = table()
    train.loc[[1, 5], "income"] = np.nan
    train.loc[[2], "city"] = None
    pre = TabularPreprocessing.fit(train, target="label")
    x = pre.transform(train)
    assert torch.isnan(x["num"][:, 0]).nonzero().flatten().tolist() == [1, 5]
    assert not torch.isnan(x["num"][:, 1]).any()
    assert x["cat"][2, 0] == MISSING_INDEX


def test_missing_values_raise_when_the_policy_is_error():
    train = table()
    pre = TabularPreprocessing.fit(train, target="label", missing="error")
    rows = table(10, seed=3)
    rows.loc[[4, 7], "age"] = np.nan
    with pytest.raises(ValueError, match=r"column 'age' of batch 2 has 2 missing values at rows 4, 7"):
        pre.transform(rows, source="batch 2")


def test_missing_target_column_is_a_clear_error():
    with pytest.raises(ValueError, match=r"target column 'income_class' not found in the training split; "
                                         r"its columns are: income, age"):
        TabularPreprocessing.fit(table(), target="income_class")
    pre = TabularPreprocessing.fit(table(), target="label")
    with pytest.raises(ValueError, match="target column 'label' not found in test rows"):
        pre.labels(table().drop(columns=["label"]), source="test rows")


def test_missing_target_values_are_a_clear_error():
    train = table()
    train.loc[[0, 9], "label"] = None
    with pytest.raises(ValueError, match=r"target column 'label' of the training split has 2 missing values "
                                         r"at rows 0, 9"):
        TabularPreprocessing.fit(train, target="label")


def test_non_numeric_value_in_a_numeric_column_is_a_clear_error():
    train = table()
    pre = TabularPreprocessing.fit(train, target="label")
    rows = table(5, seed=2).astype({"income": object})
    rows.loc[3, "income"] = "12,5k"
    with pytest.raises(ValueError, match=r"column 'income' of new rows is numeric but holds non-numeric values "
                                         r"\('12,5k'\) at rows 3"):
        pre.transform(rows, source="new rows")
    # while fitting: a declared numeric column, and a text column of numbers with a typo
    with pytest.raises(ValueError, match="column 'city' of the training split is numeric but holds non-numeric"):
        TabularPreprocessing.fit(train, target="label", numeric=["city"])
    typo = train.astype({"age": object})
    typo.loc[17, "age"] = "forty"
    with pytest.raises(ValueError, match=r"column 'age' .* \('forty'\) at rows 17"):
        TabularPreprocessing.fit(typo, target="label")


def test_missing_feature_column_at_inference_is_a_clear_error():
    pre = TabularPreprocessing.fit(table(), target="label")
    with pytest.raises(ValueError, match=r"new rows lacks the feature columns \['city'\]"):
        pre.transform(table().drop(columns=["city"]), source="new rows")


def test_export_config_is_json_and_rebuilds_an_identical_transform():
    train = table()
    train.loc[4, "income"] = np.nan
    pre = TabularPreprocessing.fit(train, target="label")
    config = json.loads(json.dumps(pre.export_config()))
    assert config["class"] == "TabularPreprocessing"
    config.pop("class")
    rebuilt = TabularPreprocessing(**config)
    rows = table(50, seed=9)
    a, b = pre.transform(rows), rebuilt.transform(rows)
    torch.testing.assert_close(a["num"], b["num"], rtol=0, atol=0, equal_nan=True)
    assert torch.equal(a["cat"], b["cat"]) and torch.equal(pre.labels(rows), rebuilt.labels(rows))


def test_regression_target_stays_in_original_units():
    frame = table().assign(price=np.linspace(1e5, 5e5, 200))
    pre = TabularPreprocessing.fit(frame.drop(columns=["label"]), target="price")
    assert pre.task == "regression" and pre.num_classes is None
    torch.testing.assert_close(pre.labels(frame), torch.tensor(frame["price"].to_numpy(), dtype=torch.float32))


def test_category_keys_match_across_integer_and_float_columns():
    assert category_keys(pd.Series([3, 4])).tolist() == ["3", "4"]
    keys = category_keys(pd.Series([3.0, np.nan, 4.5]))
    assert keys[0] == "3" and pd.isna(keys[1]) and keys[2] == "4.5"


def test_no_warning_for_known_categories():
    pre = TabularPreprocessing.fit(table(), target="label")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pre.transform(table(20, seed=4))
