"""Reading tables as users have them: missing-value markers, padded cells, header-less files, errors that name the
file and the line an editor shows, and columns that are missing in every evaluation row."""

import gzip
import re
import warnings

import numpy as np
import pandas as pd
import pytest
from jsonargparse import ArgumentParser

from byol.data import TableRows
from byol.data.tabular import TableFileDataModule
from byol.data.tabular_preprocessing import MISSING_INDEX, TabularPreprocessing
from byol.data.tabular_sources import DEFAULT_NA_VALUES, read_table

ADULT_COLUMNS = ["age", "workclass", "hours", "income"]
# UCI adult.data: no header, ", " between fields, "?" for a missing value
ADULT_ROWS = """\
39, State-gov, 40, <=50K
50, ?, 13, <=50K
38, Private, NA, >50K
53, Private,, <=50K
28, Private , 40, >50K
37,Private, ?, <=50K
"""


def line_of(text: str, content: str) -> int:
    """The 1-based line of ``text`` that holds ``content``, as an editor shows it."""
    return next(i for i, line in enumerate(text.splitlines(), start=1) if content in line)


def adult_csv(tmp_path, header: bool = True, name: str = "adult.csv") -> str:
    path = tmp_path / name
    path.write_text((", ".join(ADULT_COLUMNS) + "\n" if header else "") + ADULT_ROWS)
    return str(path)


# ----- 1, 2: missing-value markers and padded cells ----------------------------------------------------------


def test_question_marks_and_pandas_markers_are_missing_and_padding_is_stripped(tmp_path):
    frame = read_table(adult_csv(tmp_path))
    assert list(frame.columns) == ADULT_COLUMNS
    assert frame["workclass"].isna().tolist() == [False, True, False, False, False, False]
    assert frame["hours"].isna().tolist() == [False, False, True, True, False, True]
    assert frame["workclass"].dropna().tolist() == ["State-gov", "Private", "Private", "Private", "Private"]
    assert frame["income"].tolist() == ["<=50K", "<=50K", ">50K", "<=50K", ">50K", "<=50K"]
    pre = TabularPreprocessing.fit(frame, target="income")
    assert pre.categorical[0].categories == ("Private", "State-gov")  # no " Private", "Private " nor "?"
    assert pre.numeric[0].name == "age" and pre.numeric[1].name == "hours"  # "?" does not make "hours" text


def test_default_na_values_are_pandas_markers_and_the_question_mark():
    assert {"?", "", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "#N/A", "<NA>"} <= set(DEFAULT_NA_VALUES)


def test_given_na_values_replace_the_default_list(tmp_path):
    frame = read_table(adult_csv(tmp_path), na_values=["-"])
    assert "?" in frame["workclass"].tolist() and "NA" in frame["hours"].tolist()
    assert frame["hours"].isna().sum() == 0 and frame["hours"].tolist()[3] == ""


def test_datamodule_passes_na_values_through(tmp_path):
    path = adult_csv(tmp_path)
    dm = TableFileDataModule(path, target="income", val_fraction=0, test_fraction=0, batch_size=2)
    assert dm.preprocessing.categorical[0].categories == ("Private", "State-gov")
    kept = TableFileDataModule(path, target="income", val_fraction=0, test_fraction=0, batch_size=2,
                               na_values=["", "NA"], categorical=["hours"])
    assert "?" in kept.preprocessing.categorical[0].categories


def test_tsv_and_parquet_are_cleaned_alike(tmp_path):
    csv_frame = read_table(adult_csv(tmp_path))
    tsv = tmp_path / "adult.tsv"
    tsv.write_text("\t".join(ADULT_COLUMNS) + "\n" + ADULT_ROWS.replace(",", "\t"))
    pd.testing.assert_frame_equal(read_table(tsv), csv_frame, check_index_type=False)
    raw = pd.DataFrame({"age": [39, 50, 38], "workclass": [" State-gov", " ?", "Private "],
                        "income": ["<=50K", " >50K", "<=50K"]})
    raw.to_parquet(tmp_path / "adult.parquet")
    frame = read_table(tmp_path / "adult.parquet")
    assert frame["workclass"].tolist()[0::2] == ["State-gov", "Private"] and pd.isna(frame["workclass"][1])
    assert frame["income"].tolist() == ["<=50K", ">50K", "<=50K"]


# ----- 3: files without a header row -------------------------------------------------------------------------


def test_header_less_file_takes_the_given_column_names(tmp_path):
    headless = read_table(adult_csv(tmp_path, header=False), columns=ADULT_COLUMNS)
    with_header = read_table(adult_csv(tmp_path, header=True, name="h.csv"), columns=ADULT_COLUMNS)
    assert list(headless.columns) == ADULT_COLUMNS and len(headless) == 6
    assert headless.index.tolist() == [1, 2, 3, 4, 5, 6]  # no header: the first row is line 1
    assert with_header.index.tolist() == [2, 3, 4, 5, 6, 7]  # a first line equal to the names is the header
    pd.testing.assert_frame_equal(headless.reset_index(drop=True), with_header.reset_index(drop=True))
    dm = TableFileDataModule(adult_csv(tmp_path, header=False), target="income", columns=ADULT_COLUMNS,
                             val_fraction=0, test_fraction=0, batch_size=2)
    assert dm.preprocessing.feature_names == ["age", "hours", "workclass"]


def test_column_names_that_do_not_fit_the_file_are_refused(tmp_path):
    path = adult_csv(tmp_path, header=False)
    with pytest.raises(ValueError, match=r"adult\.csv: line 1 has 4 fields but columns names 3"):
        read_table(path, columns=ADULT_COLUMNS[:3])
    with pytest.raises(ValueError, match=r"adult\.csv: line 1 has 4 fields but columns names 5"):
        TableFileDataModule(path, columns=[*ADULT_COLUMNS, "extra"])
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "t.parquet")
    with pytest.raises(ValueError, match=r"t\.parquet: columns names the columns of a CSV file"):
        read_table(tmp_path / "t.parquet", columns=["a", "b"])


# ----- 4: errors name the line an editor shows -------------------------------------------------------------


def test_a_bad_value_is_named_by_its_file_line(tmp_path):
    text = ("x,y,note,split\n"
            "1,2.5,plain,train\n"
            "2,3.5,\"two\nlines\",train\n"  # a quoted field over two lines: the next row starts on line 5
            "\n"  # a blank line, skipped
            "3,4.5,plain,train\n"
            "4,5.5,plain,train\n"
            "5,oops,plain,test\n"
            "6,6.5,plain,val\n")
    path = tmp_path / "bad.csv"
    path.write_text(text)
    line = line_of(text, "oops")
    assert line == 8
    with pytest.raises(ValueError, match=rf"column 'y' of .*bad\.csv \(test split\) is numeric but holds "
                                         rf"non-numeric values \('oops'\) at line {line};"):
        TableFileDataModule(str(path), split_column="split", batch_size=2)
    assert read_table(path).index.tolist() == [2, 3, 6, 7, 8, 9]


def test_line_numbers_match_pandas_parse_errors(tmp_path):
    """A bad value and a ragged row of the same file are named by the same line numbers as pandas uses."""
    rows = ["a,b,label", "1,2,yes", "", "3,4,no", "5,,yes", "7,8,no"]
    path = tmp_path / "t.csv"
    path.write_text("\n".join(rows) + "\n")
    pre = TabularPreprocessing.fit(pd.DataFrame({"a": [1.0, 2.0], "b": [1.0, 2.0], "label": ["yes", "no"]}),
                                   target="label", missing="error")
    with pytest.raises(ValueError, match=r"column 'b' of .*t\.csv has 1 missing values at line 5;"):
        TableRows(path).preprocessed(pre)
    rows[4] = "5,6,yes,extra"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError, match=r"Expected 3 fields in line 5, saw 4"):
        pd.read_csv(path)
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(path))} .*Expected 3 fields in line 5"):
        read_table(path)


def test_missing_targets_and_unseen_categories_name_lines(tmp_path):
    text = "a,colour,label\n1,red,yes\n2,blue,\n3,green,no\n4,red,yes\n"
    path = tmp_path / "t.csv"
    path.write_text(text)
    train = pd.DataFrame({"a": [1.0, 2.0], "colour": ["red", "blue"], "label": ["yes", "no"]})
    pre = TabularPreprocessing.fit(train, target="label")
    rows = TableRows(path)
    with pytest.warns(UserWarning, match=r"column 'colour' of .*t\.csv: 1 rows hold categories not seen .*"
                                         r"'green', line 4\)"):
        pre.transform(rows.frame, rows.source)
    with pytest.raises(ValueError, match=r"target column 'label' of .*t\.csv has 1 missing values at line 3;"):
        pre.labels(rows.frame, rows.source)


def test_parquet_rows_keep_their_positions(tmp_path):
    pd.DataFrame({"a": [1.0, 2.0, None], "b": ["x", "y", "z"]}).to_parquet(tmp_path / "t.parquet")
    frame = read_table(tmp_path / "t.parquet")
    pre = TabularPreprocessing.fit(frame.iloc[:2], missing="error")
    with pytest.raises(ValueError, match=r"column 'a' of p has 1 missing values at rows 2;"):
        pre.transform(frame, "p")


# ----- 5: every parse error names the file -----------------------------------------------------------------


def test_parse_errors_name_the_file_and_the_line(tmp_path):
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b,c\n1,2,3\n4,5,6\n7,8,9\n1,2,3,4\n")
    for read in (read_table, TableFileDataModule, TableRows):
        with pytest.raises(ValueError, match=rf"{re.escape(str(ragged))}.*Expected 3 fields in line 5, saw 4"):
            read(str(ragged))
    tsv = tmp_path / "ragged.tsv"
    tsv.write_text("a\tb\n1\t2\n3\t4\t5\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(tsv))}.*Expected 2 fields in line 3, saw 3"):
        read_table(tsv)
    gz = tmp_path / "t.csv.gz"
    with gzip.open(gz, "wt") as file:
        file.write("a,b\n1,2\n3,4,5\n")
    with pytest.raises(ValueError, match=rf"{re.escape(str(gz))}.*Expected 2 fields in line 3, saw 3"):
        read_table(gz)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really a parquet file")
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(broken))}"):
        read_table(broken)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("a,b\n1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(latin))}"):
        read_table(latin)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(ValueError, match=rf"cannot read {re.escape(str(empty))}"):
        read_table(empty)


def test_gzipped_csv_rows_are_named_by_line(tmp_path):
    gz = tmp_path / "t.csv.gz"
    with gzip.open(gz, "wt") as file:
        file.write("a,b\n1,x\n\n2,y\n")
    assert read_table(gz).index.tolist() == [2, 4]


# ----- 6: a column missing in every evaluation row -----------------------------------------------------------


def split_table(tmp_path, val_x: list, train_x: list) -> str:
    n_val = len(val_x)
    frame = pd.DataFrame({
        "x": [*train_x, *val_x],
        "colour": ["red", "blue"] * ((len(train_x) + n_val) // 2),
        "y": np.arange(len(train_x) + n_val, dtype=float),
        "split": ["train"] * len(train_x) + ["val"] * n_val,
    })
    path = tmp_path / "t.csv"
    frame.to_csv(path, index=False)
    return str(path)


def test_a_column_missing_in_every_validation_row_warns(tmp_path):
    path = split_table(tmp_path, val_x=[None, None], train_x=[1.0, 2.0, 3.0, 4.0])
    with pytest.warns(UserWarning, match=r"column 'x' is missing in all 2 rows of .*t\.csv \(validation split\), "
                                         r"but never was in the training split"):
        TableFileDataModule(path, target="y", split_column="split", batch_size=2)


def test_no_warning_when_training_rows_had_missing_values_too(tmp_path):
    path = split_table(tmp_path, val_x=[None, None], train_x=[1.0, None, 3.0, 4.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dm = TableFileDataModule(path, target="y", split_column="split", batch_size=2)
    assert dm.preprocessing.numeric[0].missing_in_training


def test_a_later_file_with_an_empty_column_warns_naming_the_file(tmp_path):
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0], "colour": ["red", "blue", "red"], "label": ["yes", "no", "yes"]})
    pre = TabularPreprocessing.fit(train, target="label")
    path = tmp_path / "later.csv"
    path.write_text("a,colour,label\n1.5, ?,yes\n2.5,,no\n")
    with pytest.warns(UserWarning, match=r"column 'colour' is missing in all 2 rows of .*later\.csv"):
        x = TableRows(path).preprocessed(pre)
    assert (x.cat[:, 0] == MISSING_INDEX).all()


def test_missing_in_training_survives_export_and_old_configs_still_load():
    train = pd.DataFrame({"a": [1.0, None, 3.0], "c": ["u", None, "v"], "d": ["u", "v", "u"]})
    config = TabularPreprocessing.fit(train).export_config()
    config.pop("class")
    rebuilt = TabularPreprocessing(**config)
    assert [c.missing_in_training for c in rebuilt.numeric + rebuilt.categorical] == [True, True, False]
    for column in config["numeric"] + config["categorical"]:
        column.pop("missing_in_training")  # a config exported before the field existed
    old = TabularPreprocessing(**config)
    assert not any(c.missing_in_training for c in old.numeric + old.categorical)


# ----- the options reach the datamodule from a config --------------------------------------------------------


def test_options_are_constructor_arguments_of_the_config(tmp_path):
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(TableFileDataModule, "data")
    path = adult_csv(tmp_path, header=False)
    cfg = parser.parse_args(["--data.path", path, "--data.target", "income", "--data.columns",
                             '["age", "workclass", "hours", "income"]', "--data.na_values", '["?", ""]',
                             "--data.val_fraction", "0", "--data.test_fraction", "0", "--data.batch_size", "2"])
    assert list(cfg.data.na_values) == ["?", ""]
    dm = parser.instantiate_classes(cfg).data
    assert dm.preprocessing.feature_names == ["age", "workclass", "hours"]  # "NA" is now a value: text column
    assert "na_values" in parser.format_help() and "without a header row" in parser.format_help()
