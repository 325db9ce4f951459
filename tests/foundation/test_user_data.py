"""The user's own data: datasets from the config / --register, and the box-format converters
(VOC XML, labelme, VIA, COCO) on real annotations (nuts_coco, labelme_voc3)."""

import json
import os
import sys
import xml.etree.ElementTree as ET

import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from conftest import REPO_ROOT, shared_path
from weaksup import add_weaksup_config
from weaksup.data.datasets import parse_register_spec, register_user_datasets
from weaksup.data.datasets.convert import labelme_to_coco, via_to_coco, voc_xml_to_coco
from weaksup.evaluation.coco_evaluation import build_coco_evaluator

sys.path.insert(0, str(REPO_ROOT / "datasets"))
import convert_to_coco  # noqa: E402

VOC3 = ("labelme_voc3", "examples", "instance_segmentation")


@pytest.fixture(scope="module")
def nuts():
    root = shared_path("nuts_coco", "data")
    with open(root / "trainval.json") as f:
        data = json.load(f)
    return str(root / "trainval.json"), str(root / "images"), data


def _cfg(*entries, num_classes=3):
    cfg = add_weaksup_config(get_cfg())
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = num_classes
    cfg.WEAKSUP.DATASETS.COCO = [list(e) for e in entries]
    return cfg


def _boxes_by_image(coco):
    """{file base name: sorted [(class name, x0, y0, x1, y1)]} of a COCO dict."""
    names = {c["id"]: c["name"] for c in coco["categories"]}
    files = {im["id"]: os.path.basename(im["file_name"]) for im in coco["images"]}
    out = {f: [] for f in files.values()}
    for a in coco["annotations"]:
        x, y, w, h = a["bbox"]
        out[files[a["image_id"]]].append((names[a["category_id"]], x, y, x + w, y + h))
    return {f: sorted(v) for f, v in out.items()}


def _assert_same_boxes(got, expected, tol):
    assert got.keys() == expected.keys()
    for f in expected:
        assert len(got[f]) == len(expected[f]), f
        for g, e in zip(got[f], expected[f]):
            assert g[0] == e[0], (f, g, e)
            assert max(abs(a - b) for a, b in zip(g[1:], e[1:])) <= tol, (f, g, e)


def test_parse_register_spec():
    assert parse_register_spec("a_boxonly=x.json:imgs") == [
        "a_boxonly",
        "x.json",
        "imgs",
        "boxonly",
    ]
    assert parse_register_spec("a=x.json:imgs") == ["a", "x.json", "imgs", "instances"]
    assert parse_register_spec("a=x.json:imgs:boxonly") == ["a", "x.json", "imgs", "boxonly"]
    for bad in ("a", "a=x.json", "=x.json:imgs", "a=x.json:imgs:masks", "a=C:/x.json:D:/imgs"):
        with pytest.raises(ValueError, match="NAME=JSON:IMAGES"):
            parse_register_spec(bad)


def test_register_from_config_and_command_line(nuts):
    json_file, image_root, data = nuts
    cfg = _cfg(["user_nuts_val", json_file, image_root, "instances"])
    names = register_user_datasets(cfg, [f"user_nuts_train_boxonly={json_file}:{image_root}"])
    assert names == ["user_nuts_val", "user_nuts_train_boxonly"]
    assert cfg.WEAKSUP.DATASETS.COCO[1][3] == "boxonly"  # recorded in the config (config.yaml)
    boxonly, full = DatasetCatalog.get("user_nuts_train_boxonly"), DatasetCatalog.get(
        "user_nuts_val"
    )
    for dicts in (boxonly, full):
        assert len(dicts) == 18 and sum(len(r["annotations"]) for r in dicts) == 165
    assert not any("segmentation" in a for r in boxonly for a in r["annotations"])
    assert all("segmentation" in a for r in full for a in r["annotations"])
    assert full[0]["annotations"][0]["bbox"] == [101.0, 118.0, 237.0, 285.0]
    assert MetadataCatalog.get("user_nuts_val").thing_classes == ["date", "fig", "hazelnut"]
    # idempotent in a process (setup runs again, e.g. --eval-only after training)
    assert register_user_datasets(cfg) == names
    # the COCO evaluator scores a box-only test set on boxes only, one with masks on both
    cfg.MODEL.MASK_ON = True
    assert build_coco_evaluator(cfg, "user_nuts_train_boxonly", None)._tasks == ("bbox",)
    assert build_coco_evaluator(cfg, "user_nuts_val", None)._tasks == ("bbox", "segm")


def test_config_from_command_line_overrides(nuts):
    json_file, image_root, _ = nuts
    cfg = _cfg()
    cfg.merge_from_list(
        ["WEAKSUP.DATASETS.COCO", f"[['user_nuts_opts', '{json_file}', '{image_root}', 'boxonly']]"]
    )
    assert register_user_datasets(cfg) == ["user_nuts_opts"]


def test_bad_user_datasets(nuts, tmp_path):
    json_file, image_root, data = nuts
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        register_user_datasets(_cfg(["u1", missing, image_root, "boxonly"]))
    with pytest.raises(FileNotFoundError, match="image folder not found: .*no_images"):
        register_user_datasets(_cfg(["u2", json_file, str(tmp_path / "no_images"), "boxonly"]))
    with pytest.raises(ValueError, match="unknown kind 'masks'"):
        register_user_datasets(_cfg(["u3", json_file, image_root, "masks"]))
    with pytest.raises(ValueError, match="expected \\[name, json_file, image_root, kind\\]"):
        register_user_datasets(_cfg(["u4", json_file, image_root]))
    with pytest.raises(ValueError, match="'pennfudan_val' is already registered"):
        register_user_datasets(_cfg(["pennfudan_val", json_file, image_root, "instances"]))
    # a record whose image file is missing: named (json, image id, path) when the data loads
    edited = json.loads(json.dumps(data))
    edited["images"][3]["file_name"] = "missing_photo.jpg"
    bad = tmp_path / "bad_images.json"
    bad.write_text(json.dumps(edited))
    register_user_datasets(_cfg(["u5_boxonly", str(bad), image_root, "boxonly"]))
    with pytest.raises(
        FileNotFoundError, match="bad_images.json: 1 of 18 image.*image 3: .*missing_photo.jpg"
    ):
        DatasetCatalog.get("u5_boxonly")
    # the model's number of classes differs from the json's categories
    register_user_datasets(_cfg(["u7", json_file, image_root, "boxonly"], num_classes=1))
    with pytest.raises(
        ValueError, match="trainval.json: 3 categories .* set MODEL.ROI_HEADS.NUM_CLASSES 3"
    ):
        DatasetCatalog.get("u7")
    # not json: the loader's message names the file
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    register_user_datasets(_cfg(["u6", str(garbage), image_root, "instances"]))
    with pytest.raises(ValueError, match="garbage.json: not a valid json"):
        DatasetCatalog.get("u6")


def test_labelme_nuts_matches_its_coco_json(nuts):
    """nuts_coco's labelme folder and its COCO json are the same annotations: the boxes of the
    labelme polygons equal the json's (integer-rounded) boxes within a pixel."""
    _, _, data = nuts
    coco = labelme_to_coco(str(shared_path("nuts_coco", "labelme_json")))
    assert [c["name"] for c in coco["categories"]] == ["date", "fig", "hazelnut"]
    assert len(coco["images"]) == 18 and len(coco["annotations"]) == 165
    _assert_same_boxes(_boxes_by_image(coco), _boxes_by_image(data), tol=1.0)
    assert all(len(a["segmentation"][0]) >= 6 for a in coco["annotations"])  # polygons kept


def test_labelme_groups_and_ignore_match_labelme2coco():
    """labelme_voc3: shapes sharing a group_id are one instance, __ignore__ is skipped; boxes
    as in the COCO json that labelme's own labelme2coco wrote from the same files."""
    root = shared_path(*VOC3)
    classes = convert_to_coco.read_classes(str(root / "labels.txt"))
    assert classes[0] == "aeroplane" and len(classes) == 20
    coco = labelme_to_coco(str(root / "data_annotated"), classes=classes)
    with open(root / "data_dataset_coco" / "annotations.json") as f:
        reference = json.load(f)
    assert len(coco["annotations"]) == 12
    _assert_same_boxes(_boxes_by_image(coco), _boxes_by_image(reference), tol=1.0)
    grouped = [a for a in coco["annotations"] if len(a["segmentation"]) == 4]
    assert [coco["categories"][a["category_id"] - 1]["name"] for a in grouped] == ["sofa"]


def _write_voc_xml(data, folder, difficult_ids=()):
    """One VOC XML per nuts image: 1-based inclusive pixel boxes, as LabelImg writes them."""
    names = {c["id"]: c["name"] for c in data["categories"]}
    os.makedirs(folder)
    for im in data["images"]:
        root = ET.Element("annotation")
        ET.SubElement(root, "filename").text = im["file_name"]
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(im["width"])
        ET.SubElement(size, "height").text = str(im["height"])
        for a in data["annotations"]:
            if a["image_id"] != im["id"]:
                continue
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = names[a["category_id"]]
            ET.SubElement(obj, "difficult").text = "1" if a["id"] in difficult_ids else "0"
            box = ET.SubElement(obj, "bndbox")
            x, y, w, h = a["bbox"]
            for tag, v in zip(("xmin", "ymin", "xmax", "ymax"), (x + 1, y + 1, x + w, y + h)):
                ET.SubElement(box, tag).text = str(int(v))
        ET.ElementTree(root).write(
            os.path.join(folder, os.path.splitext(im["file_name"])[0] + ".xml")
        )


def test_voc_xml_round_trip(nuts, tmp_path):
    json_file, image_root, data = nuts
    _write_voc_xml(data, tmp_path / "Annotations", difficult_ids={1})
    coco = voc_xml_to_coco(str(tmp_path / "Annotations"), image_root)
    _assert_same_boxes(_boxes_by_image(coco), _boxes_by_image(data), tol=0.0)  # exact
    first = [a for a in coco["annotations"] if a["image_id"] == 0]
    assert first[0]["bbox"] == [101.0, 118.0, 136.0, 167.0] and first[0]["iscrowd"] == 1
    assert sum(a["iscrowd"] for a in coco["annotations"]) == 1
    # through the command line, then registered and loaded as box-only training data
    out = tmp_path / "voc.json"
    convert_to_coco.main(
        [
            "--format",
            "voc_xml",
            "--input",
            str(tmp_path / "Annotations"),
            "--image-root",
            image_root,
            "--output",
            str(out),
        ]
    )
    register_user_datasets(_cfg(["user_voc_xml_boxonly", str(out), image_root, "boxonly"]))
    dicts = DatasetCatalog.get("user_voc_xml_boxonly")
    assert len(dicts) == 18 and sum(len(r["annotations"]) for r in dicts) == 165


def test_voc_xml_bad_input(nuts, tmp_path):
    _, image_root, data = nuts
    folder = tmp_path / "Annotations"
    _write_voc_xml(data, folder)
    (folder / "3.xml").write_text("<annotation><filename>3.jpg</filename>")
    with pytest.raises(ValueError, match="3.xml: not a valid XML"):
        voc_xml_to_coco(str(folder), image_root)
    (folder / "3.xml").write_text(
        "<annotation><filename>3.jpg</filename><size><width>800</width><height>600</height>"
        "</size><object><name>date</name></object></annotation>"
    )
    with pytest.raises(ValueError, match="3.xml: object 0: no <name> or <bndbox>"):
        voc_xml_to_coco(str(folder), image_root)
    (folder / "3.xml").unlink()
    with pytest.raises(
        ValueError, match="Annotations: image '0.jpg' object 0: unknown class 'date'"
    ):
        voc_xml_to_coco(str(folder), image_root, classes=["fig", "hazelnut"])
    with pytest.raises(FileNotFoundError, match="annotation folder not found"):
        voc_xml_to_coco(str(tmp_path / "nothing"), image_root)


def test_via_project(nuts, tmp_path):
    """A VIA 2 project of nuts_coco: rect regions for dates, polygons for the others."""
    json_file, image_root, data = nuts
    names = {c["id"]: c["name"] for c in data["categories"]}
    metadata = {}
    for im in data["images"]:
        regions = []
        for a in data["annotations"]:
            if a["image_id"] != im["id"]:
                continue
            x, y, w, h = a["bbox"]
            if names[a["category_id"]] == "date":
                shape = {"name": "rect", "x": x, "y": y, "width": w, "height": h}
            else:  # a diamond touching the box sides
                xs, ys = [x + w / 2, x + w, x + w / 2, x], [y, y + h / 2, y + h, y + h / 2]
                shape = {"name": "polygon", "all_points_x": xs, "all_points_y": ys}
            regions.append(
                {"shape_attributes": shape, "region_attributes": {"type": names[a["category_id"]]}}
            )
        metadata[f"{im['file_name']}123"] = {
            "filename": im["file_name"],
            "size": 123,
            "regions": regions,
        }
    project = tmp_path / "via_project.json"
    project.write_text(json.dumps({"_via_settings": {}, "_via_img_metadata": metadata}))
    coco = via_to_coco(str(project), image_root)
    _assert_same_boxes(_boxes_by_image(coco), _boxes_by_image(data), tol=1e-6)
    assert {(im["height"], im["width"]) for im in coco["images"]} == {(600, 800)}  # read from files
    metadata["0.jpg123"]["regions"][0]["region_attributes"] = {"kind": "date", "type": "date"}
    project.write_text(json.dumps(metadata))
    with pytest.raises(ValueError, match="image '0.jpg' region 0: class attribute None"):
        via_to_coco(str(project), image_root)
    assert len(via_to_coco(str(project), image_root, class_attribute="type")["annotations"]) == 165


def test_coco_boxes_only_cli(nuts, tmp_path):
    json_file, image_root, data = nuts
    out = tmp_path / "boxes.json"
    coco = convert_to_coco.main(
        ["--format", "coco", "--input", json_file, "--boxes-only", "--output", str(out)]
    )
    with open(out) as f:
        written = json.load(f)
    assert written == coco and len(written["annotations"]) == 165
    assert not any("segmentation" in a for a in written["annotations"])
    assert [a["bbox"] for a in written["annotations"]] == [a["bbox"] for a in data["annotations"]]
