"""Long CSV readers: values round-trip, and bad files get messages with line numbers."""

from __future__ import annotations

import pytest

from galton.connectors import read_annotations_csv, read_crowd_dataset, read_gold_csv
from galton.quality import InputError


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_annotations_and_keeps_ids_as_strings(tmp_path):
    path = write(tmp_path / "a.csv", "item,worker,label,extra\n01,w1,pos,x\n1,w1,neg,y\n01,w2,pos,z\n")
    m, enc = read_annotations_csv(path)
    assert enc.item_ids == ("01", "1")
    assert enc.class_names == ("neg", "pos")
    assert m.labels.tolist() == [1, 0, 1]


def test_custom_columns_and_bom(tmp_path):
    path = write(tmp_path / "a.csv", "\ufefftask,annotator,answer\nt,a,x\n")
    m, enc = read_annotations_csv(path, item_column="task", worker_column="annotator", label_column="answer")
    assert enc.item_ids == ("t",) and m.n_annotations == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("item,label\n1,x\n", "missing ['worker']"),
        ("item,worker,label\n", "header but no rows"),
        ("item,worker,label\n1,a,x\n2,b\n", "different number of fields than the header (lines 3)"),
        ("item,worker,label\n1,a,x\n1,a,y\n", "repeat an (item, worker) pair at rows 2"),
        ("item,worker,label\n1,a,\n", "missing label"),
    ],
)
def test_bad_annotation_files(tmp_path, text, message):
    with pytest.raises(InputError) as info:
        read_annotations_csv(write(tmp_path / "bad.csv", text))
    assert message in str(info.value)
    assert "bad.csv" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read_annotations_csv(tmp_path / "nope.csv")


def test_gold_reader(tmp_path):
    assert read_gold_csv(write(tmp_path / "g.csv", "item,label\n1,x\n2,y\n1,x\n")) == {"1": "x", "2": "y"}
    with pytest.raises(InputError, match="two different labels: '1'"):
        read_gold_csv(write(tmp_path / "g2.csv", "item,label\n1,x\n1,y\n"))
    with pytest.raises(InputError, match="empty item or label"):
        read_gold_csv(write(tmp_path / "g3.csv", "item,label\n1,\n"))


def test_dataset_folder_includes_gold_only_classes(tmp_path):
    write(tmp_path / "annotations.csv", "item,worker,label\n1,a,x\n2,a,x\n")
    write(tmp_path / "gold.csv", "item,label\n1,z\n3,x\n")
    ds = read_crowd_dataset(tmp_path)
    assert ds.encoding.class_names == ("x", "z")
    assert ds.gold_codes().tolist() == [1, -1]
