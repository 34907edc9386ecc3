"""The image-folder source for a user's own export: file-name patterns, id columns such as OBJID,
text class labels, and the cache of decoded, resampled images keyed by the files' bytes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from astrobench.datasets.images import ImageFolderSource
from astrobench.datasets.schema import DataError


def _export(tmp_path, n=4):
    rng = np.random.default_rng(0)
    (tmp_path / "Imagenes").mkdir()
    ids = [587722981741363294 + i for i in range(n)]
    for objid in ids:
        Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "Imagenes" / f"{objid}.png")
    pd.DataFrame({"OBJID": ids, "CLASS": ["spiral", "elliptical", "spiral", ""][:n], "size": np.arange(n) + 1.0}
                 ).to_csv(tmp_path / "gz.csv", index=False)
    return ids


def test_file_pattern_objid_and_text_classes(tmp_path):
    ids = _export(tmp_path)
    data = ImageFolderSource(str(tmp_path), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.png",
                             label_columns=["CLASS", "size"]).load()
    assert data.object_id.tolist() == [str(i) for i in ids]  # OBJID found as the id column
    assert data.labels["CLASS"].tolist() == ["spiral", "elliptical", "spiral", ""]  # "" = missing
    assert data.labels["size"].tolist() == [1.0, 2.0, 3.0, 4.0]
    first = np.asarray(Image.open(tmp_path / "Imagenes" / f"{ids[0]}.png"), dtype=np.float32) / 255
    np.testing.assert_allclose(data.image[0], np.moveaxis(first, -1, 0))
    default = ImageFolderSource(str(tmp_path), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.png").load()
    assert set(default.labels) == {"size"}  # text is a label only when named; the id is never one


def test_pattern_and_file_errors_name_the_columns(tmp_path):
    _export(tmp_path)
    with pytest.raises(DataError, match=r"names column\(s\) \['objid'\] that catalogue .*gz\.csv does not have; it has \['OBJID', 'CLASS', 'size'\]"):
        ImageFolderSource(str(tmp_path), catalog="gz.csv", file_pattern="Imagenes/{objid}.png").load()
    with pytest.raises(DataError, match=r"no column 'file' of image paths.*file_pattern such as 'images/\{OBJID\}\.jpeg'"):
        ImageFolderSource(str(tmp_path), catalog="gz.csv").load()
    with pytest.raises(DataError, match=r"row 0: image file .*\.jpeg does not exist \(and 3 more of the 4 rows"):
        ImageFolderSource(str(tmp_path), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.jpeg").load()
    with pytest.raises(DataError, match="named fields"):
        ImageFolderSource(str(tmp_path), catalog="gz.csv", file_pattern="Imagenes/{}.png").load()


def test_decoded_images_are_cached_by_the_files_content(tmp_path, monkeypatch):
    folder, cache = tmp_path / "d", tmp_path / "cache"
    folder.mkdir()
    ids = _export(folder)
    source = ImageFolderSource(str(folder), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.png", size=4)
    first = source.load(cache)
    assert len(list((cache / "images").glob("*.npz"))) == 1
    reads = []
    original = ImageFolderSource._read
    monkeypatch.setattr(ImageFolderSource, "_read", lambda self, file: reads.append(file) or original(self, file))
    again = source.load(cache)
    assert reads == [] and np.array_equal(again.image, first.image) and np.array_equal(again.pixel_scale, first.pixel_scale)
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / "Imagenes" / f"{ids[1]}.png")  # an edited file
    edited = source.load(cache)
    assert len(reads) == len(ids) and edited.image[1].max() == 0 and np.array_equal(edited.image[0], first.image[0])
    ImageFolderSource(str(folder), catalog="gz.csv", file_pattern="Imagenes/{OBJID}.png", size=2).load(cache)
    assert len(list((cache / "images").glob("*.npz"))) == 3  # another size: another entry
