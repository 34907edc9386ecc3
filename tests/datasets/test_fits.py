"""FitsSource on the real DECaLS and HSC files, and on small FITS files written in tmp_path."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from astropy.wcs import WCS

from astrobench.datasets._source_utils import psf_fwhm_pixels
from astrobench.datasets.fits import FitsSource
from astrobench.datasets.schema import DataError
from astrobench.registry import DATASETS

GOOD = ["example_a", "example_b", "example_bad_pix", "example_c", "example_d", "example_e"]
# pixel scale (arcsec) from each file's CD matrix: the cutouts were resampled, not native 0.262
PIXEL_SCALE = {"example_a": 0.1, "example_b": 0.10136411, "example_bad_pix": 0.13024935, "example_c": 0.1432296,
               "example_d": 0.13024935, "example_e": 0.14141076, "temp_small": 0.262}  # fmt: skip
# half-maximum widths of PSF_HSC.fits at 0.168"/px (HSC COSMOS seeing; i and z sharpest)
EXPECTED_HSC_FWHM = [0.734, 0.634, 0.587, 0.549, 0.651]


@pytest.fixture()
def good_folder(tmp_path, real_data):
    """The readable DECaLS files (links: nothing in shared/ is modified)."""
    folder = tmp_path / "good"
    folder.mkdir()
    for name in [*GOOD, "temp_small"]:
        (folder / f"{name}.fits").symlink_to(real_data / "decals_fits" / f"{name}.fits")
    return folder


@pytest.mark.parametrize("name", [*GOOD, "temp_small"])
def test_each_decals_file(real_file, name):
    path = real_file(f"decals_fits/{name}.fits")  # three are committed in tests/data, the rest skip without ../shared
    data = FitsSource(str(path)).load()
    size = 225 if name == "temp_small" else 424
    assert data.image.shape == (1, 3, size, size)
    assert data.bands == ("g", "r", "z")
    assert list(data.object_id) == [name]
    assert data.pixel_scale[0] == pytest.approx(PIXEL_SCALE[name], rel=1e-6)
    header = fits.getheader(path)
    # the WCS reference pixel is the centre pixel, so the centre's RA/Dec is CRVAL
    assert data.ra[0] == pytest.approx(header["CRVAL1"], abs=1e-9)
    assert data.dec[0] == pytest.approx(header["CRVAL2"], abs=1e-9)
    raw = fits.getdata(path).astype(np.float32)
    np.testing.assert_array_equal(data.mask[0], raw == 0)
    np.testing.assert_array_equal(data.image[0], raw)
    assert data.manifest == {"source": "fits", "options": FitsSource(str(path)).options()}


def test_decals_no_coverage_zeros_are_masked(test_data):
    bad_pix = test_data / "decals_fits" / "example_bad_pix.fits"
    data = FitsSource(str(bad_pix)).load()
    fractions = data.mask[0].mean(axis=(1, 2))
    np.testing.assert_allclose(fractions, [0.75707547, 0.72760546, 0.0], atol=1e-7)
    assert (data.image[data.mask] == 0).all()
    kept = FitsSource(str(bad_pix), zero_is_invalid=False).load()
    assert not kept.mask.any()


def test_decals_a_few_isolated_zeros_are_masked(real_file):
    d = FitsSource(str(real_file("decals_fits/example_d.fits"))).load()
    np.testing.assert_allclose(d.mask[0].mean(axis=(1, 2)), [0.0, 0.00132387, 0.0], atol=1e-7)


def test_truncated_file_is_an_error_naming_it(test_data):
    decals = test_data / "decals_fits"
    with pytest.raises(DataError, match=r"example_incomplete\.fits: FITS file is truncated"):
        FitsSource(str(decals / "example_incomplete.fits")).load()
    # a folder holding it is refused whole, never read as a shorter dataset
    with pytest.raises(DataError, match=r"example_incomplete\.fits"):
        FitsSource(str(decals), size=224).load()


def test_different_sizes_in_the_committed_files_need_size(tmp_path, test_data):
    for name in ("example_bad_pix", "temp_small"):
        (tmp_path / f"{name}.fits").symlink_to(test_data / "decals_fits" / f"{name}.fits")
    with pytest.raises(DataError, match=r"temp_small\.fits is 225x225 .* 424x424.*size="):
        FitsSource(str(tmp_path)).load()
    data = FitsSource(str(tmp_path), size=224).load()
    assert list(data.object_id) == ["example_bad_pix", "temp_small"] and data.image.shape == (2, 3, 224, 224)


def test_different_sizes_need_size(good_folder):
    with pytest.raises(DataError, match=r"temp_small\.fits is 225x225 .* 424x424.*size="):
        FitsSource(str(good_folder)).load()


def test_folder_centre_crop(good_folder):
    data = FitsSource(str(good_folder), size=224).load()
    assert data.image.shape == (7, 3, 224, 224)
    assert list(data.object_id) == sorted([*GOOD, "temp_small"])
    np.testing.assert_allclose(data.pixel_scale, [PIXEL_SCALE[i] for i in data.object_id], rtol=1e-6)
    raw = fits.getdata(good_folder / "example_a.fits").astype(np.float32)
    np.testing.assert_array_equal(data.image[list(data.object_id).index("example_a")], raw[:, 100:324, 100:324])
    # a 424 -> 224 crop keeps the centre, so the centre's RA/Dec is still CRVAL
    a = list(data.object_id).index("example_a")
    assert data.ra[a] == pytest.approx(146.714208787, abs=1e-9)
    bad = list(data.object_id).index("example_bad_pix")
    assert 0.5 < data.mask[bad, 0].mean() < 1.0 and data.mask[bad, 2].mean() == 0


def test_area_resample_keeps_total_flux_and_scales_pixels(real_file):
    path = real_file("decals_fits/example_a.fits")
    full = FitsSource(str(path)).load()
    small = FitsSource(str(path), size=53, resize="area").load()  # 424 = 8 x 53
    assert small.image.shape == (1, 3, 53, 53)
    assert small.pixel_scale[0] == pytest.approx(0.1 * 8, rel=1e-6)
    np.testing.assert_allclose(small.image.sum(axis=(2, 3)), full.image.sum(axis=(2, 3)), rtol=1e-4)
    block = full.image[0, 1, :8, :8].sum()
    assert small.image[0, 1, 0, 0] == pytest.approx(block, rel=1e-5)
    assert small.ra[0] == pytest.approx(full.ra[0], abs=1e-7)


def test_hsc_cutout_with_psf_file(test_data):
    folder = test_data / "hsc_blend"
    data = FitsSource(str(folder / "Cut_HSC.fits"), bands=list("grizy"), psf="PSF_HSC.fits").load()
    assert data.image.shape == (1, 5, 50, 50) and data.image.dtype == np.float32
    assert data.pixel_scale[0] == pytest.approx(0.168, rel=1e-6)
    assert not data.mask.any()
    np.testing.assert_allclose(data.image[0], fits.getdata(folder / "Cut_HSC.fits").astype(np.float32))
    assert data.ra[0] == pytest.approx(150.31916857, abs=1e-6) and data.dec[0] == pytest.approx(2.0393941, abs=1e-6)
    np.testing.assert_allclose(data.psf_fwhm[0], EXPECTED_HSC_FWHM, atol=0.01)
    with pytest.raises(DataError, match=r"Cut_HSC\.fits: no BANDS"):
        FitsSource(str(folder / "Cut_HSC.fits")).load()
    with pytest.raises(DataError, match=r"5 image planes but 3 bands"):
        FitsSource(str(folder / "Cut_HSC.fits"), bands=list("gri")).load()


def test_psf_fwhm_of_a_gaussian():
    y, x = np.mgrid[:41, :41] - 20.0
    for fwhm in (3.0, 4.5, 7.0):
        sigma = fwhm / 2.3548
        psf = np.exp(-(x**2 + y**2) / (2 * sigma**2))
        assert psf_fwhm_pixels(psf) == pytest.approx(fwhm, rel=0.03)


def _wcs(size, scale_arcsec=0.25, ra=150.0, dec=2.0):
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [ra, dec]
    wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    wcs.wcs.cdelt = [-scale_arcsec / 3600, scale_arcsec / 3600]
    return wcs


def test_catalogue_of_per_band_files_with_labels(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(3):
        for band in "gr":
            image = rng.normal(size=(16, 16)).astype(np.float32)
            if i == 1 and band == "r":
                image[3, 4] = np.nan
            header = _wcs(16).to_header()
            fits.PrimaryHDU(image, header=header).writeto(tmp_path / f"obj{i}_{band}.fits")
        rows.append({"object_id": f"obj{i}", "file_g": f"obj{i}_g.fits", "file_r": f"obj{i}_r.fits",
                     "gz_spiral_fraction": 0.1 * i, "morphology": i % 2})  # fmt: skip
    Table(rows=rows).write(tmp_path / "catalog.fits")
    data = FitsSource(str(tmp_path), catalog="catalog.fits", bands=["g", "r"]).load()
    assert data.image.shape == (3, 2, 16, 16)
    assert data.mask.sum() == 1 and data.mask[1, 1, 3, 4]
    assert data.labels["morphology"].dtype == np.int64
    np.testing.assert_allclose(data.labels["gz_spiral_fraction"], [0.0, 0.1, 0.2])
    np.testing.assert_allclose(data.pixel_scale, 0.25)


def _cube_catalog(tmp_path, labels, n=2):
    for i in range(n):
        hdu = fits.PrimaryHDU(np.ones((3, 8, 8), np.float32), header=_wcs(8).to_header())
        hdu.header["BANDS"] = "grz"
        hdu.writeto(tmp_path / f"c{i}.fits")
    lines = ["object_id,file," + ",".join(labels)]
    for i in range(n):
        lines.append(f"c{i},c{i}.fits," + ",".join(str(v[i]) for v in labels.values()))
    (tmp_path / "catalog.csv").write_text("\n".join(lines) + "\n")


def test_catalogue_label_out_of_range_is_an_error(tmp_path):
    _cube_catalog(tmp_path, {"gz_bar_fraction": [0.2, 1.3]})
    with pytest.raises(DataError, match=r"catalog\.csv.*'gz_bar_fraction' has value 1\.3 outside"):
        FitsSource(str(tmp_path), catalog="catalog.csv").load()


def test_catalogue_missing_labels_and_ranges(tmp_path):
    _cube_catalog(tmp_path, {"redshift": [0.3, ""], "dwarf": [1, 0]})
    data = FitsSource(str(tmp_path), catalog="catalog.csv", label_ranges={"redshift": (0, 0.5)}).load()
    assert np.isnan(data.labels["redshift"][1]) and data.labels["redshift"][0] == pytest.approx(0.3)
    np.testing.assert_array_equal(data.labels["dwarf"], [1, 0])


def test_empty_catalogue_and_missing_file(tmp_path):
    (tmp_path / "catalog.csv").write_text("object_id,file\n")
    with pytest.raises(DataError, match=r"catalog\.csv is empty"):
        FitsSource(str(tmp_path), catalog="catalog.csv").load()
    (tmp_path / "catalog.csv").write_text("object_id,file\nx,missing.fits\n")
    with pytest.raises(DataError, match=r"missing\.fits of object 'x' does not exist"):
        FitsSource(str(tmp_path), catalog="catalog.csv").load()


def test_extension_by_name_ivar_mask_and_scaled_integers(tmp_path):
    flux = np.arange(2 * 6 * 6, dtype=np.int16).reshape(2, 6, 6) + 1
    flux[0, 0, 0] = -32768  # BLANK
    image_hdu = fits.ImageHDU(flux, name="IMAGE")
    image_hdu.header.update(BSCALE=0.5, BZERO=10.0, BLANK=-32768, BANDS="gr")
    flags = np.zeros((2, 6, 6), np.int32)
    flags[1, 2, 2] = 4
    ivar = np.full((2, 6, 6), 2.0, np.float32)
    hdus = fits.HDUList([fits.PrimaryHDU(), image_hdu, fits.ImageHDU(ivar, name="IVAR"), fits.ImageHDU(flags, name="MASK")])
    hdus.writeto(tmp_path / "multi.fits")
    data = FitsSource(str(tmp_path / "multi.fits"), hdu="IMAGE", ivar_hdu="IVAR", mask_hdu="MASK", pixel_scale=0.2).load()
    assert data.bands == ("g", "r")
    assert data.image[0, 0, 0, 1] == pytest.approx(0.5 * 2 + 10.0)  # scaled: raw 2 -> 11
    assert data.mask[0, 0, 0, 0] and data.mask[0, 1, 2, 2] and data.mask.sum() == 2
    assert data.ivar[0, 0, 0, 0] == 0 and data.ivar[0, 0, 1, 1] == 2.0
    with pytest.raises(DataError, match=r"no HDU 'SCI'"):
        FitsSource(str(tmp_path / "multi.fits"), hdu="SCI").load()
    with pytest.raises(DataError, match=r"HDU 0 holds no data"):
        FitsSource(str(tmp_path / "multi.fits")).load()


def test_cutouts_by_ra_dec_with_partial_overlap(tmp_path):
    size = 100
    wcs = _wcs(size, scale_arcsec=0.5)
    sky = np.random.default_rng(3).normal(10.0, 1.0, size=(size, size)).astype(np.float32)
    fits.PrimaryHDU(sky, header=wcs.to_header()).writeto(tmp_path / "field.fits")
    inside_ra, inside_dec = wcs.pixel_to_world_values(40, 60)  # pixel x=40, y=60 (0-based)
    edge_ra, edge_dec = wcs.pixel_to_world_values(2, 50)  # 2 px from the left edge
    (tmp_path / "catalog.csv").write_text(
        "object_id,file,ra,dec\n"
        f"in,field.fits,{float(inside_ra)!r},{float(inside_dec)!r}\n"
        f"edge,field.fits,{float(edge_ra)!r},{float(edge_dec)!r}\n"
    )
    data = FitsSource(str(tmp_path), catalog="catalog.csv", bands=["r"], size=21, cutout=True).load()
    assert data.image.shape == (2, 1, 21, 21)
    np.testing.assert_array_equal(data.image[0, 0], sky[50:71, 30:51])
    assert not data.mask[0].any()
    # 21-px cutout centred 2 px from the edge: the 8 left columns fall outside, filled 0 and masked
    assert data.mask[1, 0].sum() == 8 * 21 and data.mask[1, 0, :, :8].all()
    assert (data.image[1, 0, :, :8] == 0).all()
    np.testing.assert_array_equal(data.image[1, 0, :, 8:], sky[40:61, 0:13])
    assert data.ra[0] == pytest.approx(float(inside_ra)) and data.pixel_scale[0] == pytest.approx(0.5)
    (tmp_path / "catalog.csv").write_text("object_id,file,ra,dec\nfar,field.fits,170.0,2.0\n")
    with pytest.raises(DataError, match=r"object 'far' at ra=170.0, dec=2.0 lies outside .*field\.fits"):
        FitsSource(str(tmp_path), catalog="catalog.csv", bands=["r"], size=21, cutout=True).load()


def test_band_header_disagreement_and_options(test_data):
    decals = test_data / "decals_fits"
    with pytest.raises(DataError, match=r"header bands \['g', 'r', 'z'\] differ from bands=\['g', 'r', 'i'\]"):
        FitsSource(str(decals / "example_bad_pix.fits"), bands=["g", "r", "i"]).load()
    with pytest.raises(DataError, match="resize must be"):
        FitsSource(str(decals), resize="bicubic")
    assert DATASETS.get("fits") is FitsSource
