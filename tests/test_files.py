"""File-based sources and TfdsSource: parsing, decoding, bad input, LFW."""

import io
import os

import numpy as np
from PIL import Image
import pytest

from conftest import LFW
from conftest import need
from jaxfer.data import images
from jaxfer.data import labels
from jaxfer.data.base import DataError
from jaxfer.data.sources import files
from jaxfer.data.sources.tfds import TfdsSource


def _save(path, mode="RGB", size=(8, 6), color=0):
  """Writes a uniform image (format from the extension); returns the path."""
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.new(mode, size, color).save(path)
  return path


def _garbage(path):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_bytes(b"this is not an image")
  return path


def _write(path, lines):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text("\n".join(lines) + "\n")
  return path


def _check_item(item, shape, label=None):
  assert item["image"].dtype == np.uint8 and item["image"].shape == shape
  if label is None:
    assert set(item) == {"image"}
  else:
    assert isinstance(item["label"], np.int32) and item["label"] == label


# ImageFolder ---------------------------------------------------------------


@pytest.fixture
def folder(tmp_path):
  root = tmp_path / "faces"
  _save(root / "happy" / "a.png", "L", color=11)
  _save(root / "happy" / "sub" / "deep" / "b.JPG", color=(200, 0, 0))
  _save(root / "sad" / "c.png", size=(5, 4), color=(0, 0, 200))
  _write(root / "sad" / "notes.txt", ["not an image"])
  _garbage(root / "sad" / ".hidden.png")
  _write(root / "README.md", ["about"])
  return root


def test_image_folder_labels_classes_and_shapes(folder):
  src = files.ImageFolder(str(folder))
  assert src.class_names == ("happy", "sad") and len(src) == 3
  np.testing.assert_array_equal(src.labels, [0, 0, 1])
  assert src.labels.dtype == np.int32 and src.skipped == []
  _check_item(src[0], (6, 8, 1), 0)
  assert (src[0]["image"] == 11).all()
  _check_item(src[1], (6, 8, 3), 0)
  _check_item(src[2], (4, 5, 3), 1)


def test_image_folder_given_class_order(folder):
  src = files.ImageFolder(str(folder), class_names=("sad", "happy"))
  np.testing.assert_array_equal(src.labels, [0, 1, 1])
  assert os.path.basename(src.paths[0]) == "c.png"


def test_image_folder_classes_must_match_folders(folder):
  with pytest.raises(DataError, match=r"\['sad'\].*\['angry'\]"):
    files.ImageFolder(str(folder), class_names=("happy", "angry"))


def test_image_folder_empty_class_is_an_error(folder):
  (folder / "fear" / "sub").mkdir(parents=True)
  with pytest.raises(DataError, match="'fear'"):
    files.ImageFolder(str(folder))


def test_image_folder_loose_image(folder):
  _save(folder / "loose.png")
  with pytest.raises(DataError, match="loose.png: image outside any class"):
    files.ImageFolder(str(folder))
  src = files.ImageFolder(str(folder), on_bad="skip")
  assert len(src) == 3 and "loose.png" in src.skipped[0][0]


def test_undecodable_image_error_and_skip(folder):
  _garbage(folder / "sad" / "broken.jpg")
  src = files.ImageFolder(str(folder))
  assert len(src) == 4
  with pytest.raises(DataError, match="broken.jpg: cannot decode"):
    src[2]
  src = files.ImageFolder(str(folder), on_bad="skip")
  assert len(src) == 3 and len(src.skipped) == 1
  where, why = src.skipped[0]
  assert where.endswith("broken.jpg") and "cannot decode" in why


def test_missing_folder_and_bad_on_bad(tmp_path):
  with pytest.raises(DataError, match="nowhere"):
    files.ImageFolder(str(tmp_path / "nowhere"))
  with pytest.raises(ValueError, match="on_bad"):
    files.UnlabeledFolder(str(tmp_path), on_bad="ignore")


@pytest.mark.parametrize(
  "name,mode,color,expected",
  [
    ("l.png", "L", 7, [7]),
    ("b.png", "1", 1, [255]),
    ("la.png", "LA", (9, 100), [9]),
    ("p.gif", "P", 3, None),
    ("rgba.webp", "RGBA", (9, 8, 7, 255), [9, 8, 7]),
    ("cmyk.jpg", "CMYK", (0, 255, 0, 0), [255, 0, 255]),
    ("rgb.bmp", "RGB", (1, 2, 3), [1, 2, 3]),
    ("rgb.tiff", "RGB", (4, 5, 6), [4, 5, 6]),
  ],
)
def test_modes_become_grey_or_rgb(tmp_path, name, mode, color, expected):
  image = images.load_image(str(_save(tmp_path / name, mode, color=color)))
  assert image.dtype == np.uint8 and image.shape[:2] == (6, 8)
  assert image.shape[2] == (3 if expected is None else len(expected))
  if expected is not None:
    np.testing.assert_allclose(image[0, 0], expected, atol=2)


def test_16_bit_grey_scales_to_8_bits(tmp_path):
  Image.fromarray(np.full((3, 4), 51400, np.uint16)).save(tmp_path / "g.png")
  image = images.load_image(str(tmp_path / "g.png"))
  assert image.shape == (3, 4, 1) and (image == 200).all()


# UnlabeledFolder -------------------------------------------------------------


def test_unlabeled_folder_order_and_identities(tmp_path):
  _save(tmp_path / "id_b" / "x.png")
  _save(tmp_path / "id_a" / "1.png", "L")
  _save(tmp_path / "id_a" / "deep" / "2.jpg")
  _save(tmp_path / "a.png")
  _write(tmp_path / "id_c" / "readme.txt", ["no images"])
  src = files.UnlabeledFolder(str(tmp_path))
  rel = [os.path.relpath(p, tmp_path) for p in src.paths]
  assert rel == [
    "a.png",
    os.path.join("id_a", "1.png"),
    os.path.join("id_a", "deep", "2.jpg"),
    os.path.join("id_b", "x.png"),
  ]
  assert src.identity_names == ("id_a", "id_b")
  np.testing.assert_array_equal(src.identities, [-1, 0, 0, 1])
  assert src.identities.dtype == np.int32
  assert src.labels is None and src.class_names is None
  _check_item(src[1], (6, 8, 1))


def test_unlabeled_folder_without_images(tmp_path):
  _write(tmp_path / "x" / "a.txt", ["-"])
  with pytest.raises(DataError, match="no images"):
    files.UnlabeledFolder(str(tmp_path))


def test_lfw_as_unlabeled_pool():
  src = files.UnlabeledFolder(str(need(LFW)))
  assert len(src) == 13233 and len(src.identity_names) == 5749
  assert (src.identities >= 0).all()
  image = src[0]["image"]
  assert image.dtype == np.uint8 and image.shape[:2] == (250, 250)


# LabeledCSV ------------------------------------------------------------------

CLASSES = ("happy", "sad", "angry")


@pytest.fixture
def csv_dir(tmp_path):
  _save(tmp_path / "imgs" / "a.png", "L")
  _save(tmp_path / "imgs" / "b.jpg")
  _garbage(tmp_path / "imgs" / "broken.png")
  return tmp_path


def test_labeled_csv_indices_names_and_roots(csv_dir, tmp_path_factory):
  other = _save(tmp_path_factory.mktemp("elsewhere") / "c.png", size=(3, 2))
  path = _write(
    csv_dir / "list.csv",
    ["path,label,note", "imgs/a.png,2,x", "imgs/b.jpg, sad ,y", f"{other},0,z"],
  )
  src = files.LabeledCSV(str(path), class_names=CLASSES)
  np.testing.assert_array_equal(src.labels, [2, 1, 0])
  assert src.class_names == CLASSES
  _check_item(src[0], (6, 8, 1), 2)
  _check_item(src[2], (2, 3, 3), 0)
  moved = _write(csv_dir / "lists" / "l.csv", ["label,path", "1,a.png"])
  src = files.LabeledCSV(
    str(moved), class_names=CLASSES, image_root=str(csv_dir / "imgs")
  )
  _check_item(src[0], (6, 8, 1), 1)


@pytest.mark.parametrize(
  "lines,pattern",
  [
    (["path,emotion", "imgs/a.png,1"], r"line 1 \(header\).*'label'"),
    (
      ["path,label", "imgs/a.png,1", "imgs/b.jpg"],
      r"line 3, field 'label': missing",
    ),
    (["path,label", ",1"], r"line 2, field 'path': missing"),
    (["path,label", "imgs/a.png,2.5"], r"line 2, field 'label': '2.5'"),
    (["path,label", "imgs/a.png,3"], r"line 2, field 'label': 3 is outside"),
    (["path,label", "imgs/a.png,-1"], r"line 2, field 'label': -1 is outside"),
    (["path,label", "imgs/a.png,joy"], r"line 2, field 'label': 'joy'"),
    (
      ["path,label", "imgs/a.png,1", "imgs/nope.png,1"],
      r"line 3, field 'path': image file not found: .*nope.png",
    ),
    (["path,label", "imgs/a.png,1,extra"], r"line 2: 3 fields"),
  ],
)
def test_labeled_csv_bad_rows(csv_dir, lines, pattern):
  path = _write(csv_dir / "bad.csv", lines)
  with pytest.raises(DataError, match=r"bad\.csv, " + pattern):
    files.LabeledCSV(str(path), class_names=CLASSES)


def test_labeled_csv_skip_keeps_the_rest(csv_dir):
  path = _write(
    csv_dir / "mixed.csv",
    [
      "path,label",
      "imgs/a.png,0",
      "imgs/a.png,9",
      "imgs/nope.png,1",
      "imgs/broken.png,1",
      "imgs/b.jpg,angry",
    ],
  )
  with pytest.raises(DataError, match="line 3"):
    files.LabeledCSV(str(path), class_names=CLASSES)
  src = files.LabeledCSV(str(path), class_names=CLASSES, on_bad="skip")
  np.testing.assert_array_equal(src.labels, [0, 2])
  wheres = [where for where, _ in src.skipped]
  assert [w.rsplit("line ", 1)[1] for w in wheres] == ["3", "4", "5"]
  assert "broken.png: cannot decode" in src.skipped[2][1]


def test_labeled_csv_without_rows_or_file(csv_dir):
  with pytest.raises(DataError, match="no images"):
    files.LabeledCSV(
      str(_write(csv_dir / "e.csv", ["path,label"])), class_names=CLASSES
    )
  with pytest.raises(DataError, match="not found.*none.csv"):
    files.LabeledCSV(str(csv_dir / "none.csv"), class_names=CLASSES)


# RAF-DB ----------------------------------------------------------------------


@pytest.fixture
def rafdb(tmp_path):
  for name in ("train_00001", "train_00002", "test_0001"):
    _save(tmp_path / "Image" / "aligned" / f"{name}_aligned.jpg", size=(10, 10))
    _save(tmp_path / "Image" / "original" / f"{name}.jpg", size=(12, 8))
  _write(
    tmp_path / "EmoLabel" / "list_patition_label.txt",
    ["train_00001.jpg 5", "test_0001.jpg 7", "", "train_00002.jpg 1"],
  )
  return tmp_path


def test_rafdb_splits_labels_and_images(rafdb):
  src = files.RafDB(str(rafdb))
  assert src.class_names == labels.RAFDB
  np.testing.assert_array_equal(src.labels, [4, 0])
  _check_item(src[0], (10, 10, 3), 4)
  test = files.RafDB(str(rafdb), split="test", aligned=False)
  np.testing.assert_array_equal(test.labels, [6])
  _check_item(test[0], (8, 12, 3), 6)


@pytest.mark.parametrize(
  "line,pattern",
  [
    ("train_00009.jpg 8", r"line 5, field 'label': 8 is outside 1..7"),
    ("train_00009.jpg x", r"line 5, field 'label': 'x'"),
    ("val_00009.jpg 3", r"line 5, field 'filename'"),
    ("train_00009.jpg", r"line 5: 1 fields"),
    (
      "train_00009.jpg 3",
      r"line 5, field 'path': image file not found: "
      r".*train_00009_aligned.jpg",
    ),
  ],
)
def test_rafdb_bad_lines(rafdb, line, pattern):
  list_file = rafdb / "EmoLabel" / "list_patition_label.txt"
  list_file.write_text(list_file.read_text() + line + "\n")
  with pytest.raises(DataError, match=r"list_patition_label\.txt, " + pattern):
    files.RafDB(str(rafdb))
  src = files.RafDB(str(rafdb), on_bad="skip")
  assert len(src) == 2 and len(src.skipped) == 1
  assert src.skipped[0][0].endswith("line 5")


# AffectNet -------------------------------------------------------------------

HEADER = (
  "subDirectory_filePath,face_x,face_y,face_width,face_height,"
  "facial_landmarks,expression,valence,arousal"
)


def _affectnet_row(path="1/face.png", box=(10, 5, 10, 10), expression=1):
  return f'{path},{",".join(map(str, box))},"1.0;2.0",{expression},0.5,0.1'


@pytest.fixture
def affectnet(tmp_path):
  image = np.zeros((30, 40, 3), np.uint8)
  image[5:15, 10:20] = (255, 0, 0)
  face = tmp_path / "Manually_Annotated_Images" / "1" / "face.png"
  face.parent.mkdir(parents=True)
  Image.fromarray(image).save(face)
  _write(
    tmp_path / "training.csv",
    [
      HEADER,
      _affectnet_row(),
      _affectnet_row(box=(35, 25, 10, 10)),
      _affectnet_row(expression=7),
      _affectnet_row(expression=8),
      _affectnet_row(expression=10),
      _affectnet_row(expression=6),
    ],
  )
  _write(tmp_path / "validation.csv", [HEADER, _affectnet_row(expression=0)])
  return tmp_path


def test_affectnet_crops_and_protocol_drops(affectnet):
  src = files.AffectNet(str(affectnet))
  assert src.class_names == labels.AFFECTNET7 and src.skipped == []
  np.testing.assert_array_equal(src.labels, [1, 1, 6])
  assert src.dropped == {"contempt": 1, "none": 1, "uncertain": 0, "no_face": 1}
  crop = src[0]["image"]
  assert crop.shape == (10, 10, 3) and (crop == (255, 0, 0)).all()
  assert src[1]["image"].shape == (5, 5, 3)  # clamped to the image
  src8 = files.AffectNet(str(affectnet), num_classes=8, crop=False)
  assert src8.class_names == labels.AFFECTNET8
  np.testing.assert_array_equal(src8.labels, [1, 1, 7, 6])
  assert src8.dropped == {"none": 1, "uncertain": 0, "no_face": 1}
  assert src8[0]["image"].shape == (30, 40, 3)
  val = files.AffectNet(str(affectnet), split="val")
  np.testing.assert_array_equal(val.labels, [0])


@pytest.mark.parametrize(
  "row,pattern",
  [
    (_affectnet_row(box=("abc", 5, 10, 10)), r"field 'face_x': 'abc'"),
    (_affectnet_row(box=(10, 5, 0, 10)), r"field 'face_width': 0 is outside"),
    (_affectnet_row(box=(10, 5, 10, 2.5)), r"field 'face_height': '2.5'"),
    (_affectnet_row(expression=11), r"field 'expression': 11 is outside"),
    (_affectnet_row(expression="happy"), r"field 'expression': 'happy'"),
    (_affectnet_row(path="1/gone.png"), r"field 'path': .*gone.png"),
  ],
)
def test_affectnet_bad_rows(affectnet, row, pattern):
  csv_path = affectnet / "training.csv"
  csv_path.write_text(csv_path.read_text() + row + "\n")
  with pytest.raises(DataError, match=r"training\.csv, line 8, " + pattern):
    files.AffectNet(str(affectnet))
  src = files.AffectNet(str(affectnet), on_bad="skip")
  assert len(src) == 3 and src.skipped[0][0].endswith("line 8")


def test_affectnet_box_outside_image_and_missing_column(affectnet):
  csv_path = affectnet / "training.csv"
  csv_path.write_text(
    csv_path.read_text() + _affectnet_row(box=(50, 0, 5, 5)) + "\n"
  )
  src = files.AffectNet(str(affectnet))
  with pytest.raises(
    DataError,
    match=r"face.png: face box \(x0, y0, x1, y1\) "
    r"= \(50, 0, 55, 5\) lies outside",
  ):
    src[3]  # Python ints, no numpy reprs
  _write(csv_path, [HEADER.replace("face_y", "fy"), _affectnet_row()])
  with pytest.raises(DataError, match=r"line 1 \(header\).*'face_y'"):
    files.AffectNet(str(affectnet))


# TfdsSource ------------------------------------------------------------------


@pytest.fixture(scope="module")
def tfds():
  tfds = pytest.importorskip("tensorflow_datasets")
  tfds.disable_progress_bar()
  return tfds


def test_tfds_mock_mnist(tfds):
  with tfds.testing.mock_data(num_examples=5):
    src = TfdsSource("mnist", split="train")
    assert len(src) == 5 and src.class_names == tuple("0123456789")
    assert src.labels.dtype == np.int32 and src.labels.shape == (5,)
    for i in range(5):
      _check_item(src[i], (28, 28, 1), src.labels[i])


def _tiny_builder(tfds):
  """A builder writing grey images whose pixel value is 10 * label."""

  class TinyFaces(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
      return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict(
          {
            "face": tfds.features.Image(shape=(None, None, 1)),
            "emotion": tfds.features.ClassLabel(
              names=["Happy", "Sad", "Angry"]
            ),
          }
        ),
      )

    def _split_generators(self, dl_manager):
      return {"train": self._generate_examples(7)}

    def _generate_examples(self, n):
      for i in range(n):
        png = io.BytesIO()
        Image.fromarray(np.full((4, 5 + i), 10 * (i % 3), np.uint8)).save(
          png, "PNG"
        )
        yield i, {"face": png.getvalue(), "emotion": i % 3}

  return TinyFaces


def test_tfds_prepared_array_record(tfds, tmp_path):
  builder = _tiny_builder(tfds)(
    data_dir=str(tmp_path), file_format="array_record"
  )
  builder.download_and_prepare()
  src = TfdsSource(
    "tiny_faces",
    split="train",
    data_dir=str(tmp_path),
    image_key="face",
    label_key="emotion",
  )
  assert len(src) == 7 and src.class_names == ("happy", "sad", "angry")
  assert sorted(src.labels.tolist()) == [0, 0, 0, 1, 1, 2, 2]
  for i in range(7):
    item = src[i]
    _check_item(item, item["image"].shape, src.labels[i])
    assert item["image"].shape[::2] == (4, 1)
    assert (item["image"] == 10 * src.labels[i]).all()
  pool = TfdsSource(
    "tiny_faces",
    split="train[:3]",
    data_dir=str(tmp_path),
    image_key="face",
    label_key=None,
  )
  assert len(pool) == 3 and pool.labels is None and set(pool[0]) == {"image"}
  with pytest.raises(DataError, match="no feature 'image'"):
    TfdsSource("tiny_faces", split="train", data_dir=str(tmp_path))
  with pytest.raises(DataError, match="split 'test'.*Unknown split"):
    TfdsSource(
      "tiny_faces",
      split="test",
      data_dir=str(tmp_path),
      image_key="face",
      label_key="emotion",
    )


def test_tfds_not_prepared_or_unknown(tfds, tmp_path):
  with pytest.raises(DataError, match="'mnist' is not prepared in "):
    TfdsSource("mnist", split="train", data_dir=str(tmp_path))
  assert not any(tmp_path.iterdir())  # nothing was downloaded
  with pytest.raises(DataError, match="no dataset 'no_such_faces'"):
    TfdsSource("no_such_faces", split="train", data_dir=str(tmp_path))
