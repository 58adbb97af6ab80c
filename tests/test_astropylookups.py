"""While a file is read, astropy's card and HDU modules use look-ups made once (a snapshot of
the configuration, remembered signatures and subclass lists): the same answers, and the modules
are given their own back after."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from pathlib import Path

import pytest
from astropy.config.configuration import ConfigItem
from astropy.io import fits
from astropy.io.fits import card as card_module
from astropy.io.fits.hdu import base as hdu_base

from fits_storage.ingest import astropylookups, fitsread
from fits_storage.ingest.astropylookups import settled_lookups
from fits_storage.ingest.fitsread import read_fits
from tests.fitsdata import astropy_data_dir, astropy_fits_names, gmos_source


@pytest.fixture
def config_questions(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the configuration items astropy is asked for, in order."""
    asked: list[str] = []
    original = ConfigItem.__call__

    def counting(self: ConfigItem) -> object:
        asked.append(self.name)
        return original(self)

    monkeypatch.setattr(ConfigItem, "__call__", counting)
    return asked


def _read(path: Path):  # noqa: ANN202 - FitsContents
    return read_fits(path, path.stat().st_size, path.name, path.name)


def test_a_file_is_read_asking_astropy_configuration_once_per_item(
    config_questions: list[str],
) -> None:
    _read(gmos_source())
    card_questions = [
        n
        for n in config_questions
        if n in ("strip_header_whitespace", "enable_record_valued_keyword_cards")
    ]
    assert card_questions, "the card module was not asked at all: the test proves nothing"
    assert sorted(card_questions) == sorted(set(card_questions))


def test_the_card_module_has_its_configuration_back_after_the_file() -> None:
    before = (card_module.conf, hdu_base.signature, hdu_base.itersubclasses, fits.Header.index)
    _read(gmos_source())
    after = (card_module.conf, hdu_base.signature, hdu_base.itersubclasses, fits.Header.index)
    assert after == before


def test_each_hdu_class_signature_and_subclass_list_is_made_once_a_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    listed: list[type] = []
    real_subclasses = hdu_base.itersubclasses
    monkeypatch.setattr(
        hdu_base,
        "itersubclasses",
        lambda cls, _seen=None: listed.append(cls) or real_subclasses(cls),
    )
    path = gmos_source()
    with fits.open(path) as hdulist:
        hdus = len(hdulist)
    assert hdus > 2  # several HDUs: else the test would prove nothing
    listed.clear()
    _read(gmos_source())  # the signatures of its HDU classes are remembered from now on
    assert listed == [hdu_base._BaseHDU]  # once for the file, not once per HDU
    hits = astropylookups._signature.cache_info().hits
    _read(path)
    assert astropylookups._signature.cache_info().hits - hits == hdus


def test_an_hdu_class_defined_between_two_files_is_found_in_the_second() -> None:
    _read(gmos_source())
    before = {c.__name__ for c in hdu_base.itersubclasses(hdu_base._BaseHDU)}

    class LateHDU(fits.ImageHDU):
        @classmethod
        def match_header(cls, header: fits.Header) -> bool:
            return False

    with settled_lookups():
        found = {c.__name__ for c in hdu_base.itersubclasses(hdu_base._BaseHDU)}
    assert found - before == {"LateHDU"}


def test_the_card_module_has_its_configuration_back_after_a_failure(tmp_path: Path) -> None:
    before = card_module.conf
    bad = tmp_path / "not.fits"
    bad.write_bytes(b"not a FITS file" * 300)
    with pytest.raises(Exception, match="not a readable FITS file"):
        _read(bad)
    assert card_module.conf is before


@pytest.mark.parametrize("name", astropy_fits_names())
def test_the_contents_are_those_read_without_the_snapshot(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = astropy_data_dir() / name
    try:
        settled = _read(path)
    except Exception as exc:  # noqa: BLE001 - a file astropy cannot read fails the same way
        settled = repr(exc)
    monkeypatch.setattr(fitsread, "settled_lookups", nullcontext)
    try:
        plain = _read(path)
    except Exception as exc:  # noqa: BLE001
        plain = repr(exc)
    assert settled == plain


def test_the_snapshot_holds_the_configuration_of_when_the_file_was_begun() -> None:
    image = "OBJECT  = 'M31     '           / a value with trailing blanks"
    with fits.conf.set_temp("strip_header_whitespace", False):
        with settled_lookups():
            assert fits.Card.fromstring(image).value == "M31     "
    with settled_lookups():
        assert fits.Card.fromstring(image).value == "M31"


def test_blocks_in_two_threads_share_one_snapshot_and_restore_it_once() -> None:
    before = card_module.conf
    inside, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def other() -> None:
        with settled_lookups():
            seen.append(card_module.conf)
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(30)
    with settled_lookups():
        seen.append(card_module.conf)
    assert card_module.conf is seen[0]  # the other thread's block is still open
    release.set()
    thread.join(30)
    assert seen[0] is seen[1] is not before
    assert card_module.conf is before


def _every_header() -> list[fits.Header]:
    headers = []
    for name in astropy_fits_names():
        try:
            with fits.open(astropy_data_dir() / name) as hdulist:
                headers += [hdu.header.copy() for hdu in hdulist]
        except Exception:  # noqa: BLE001, S112 - astropy's deliberately broken files
            continue
    return headers


def test_header_index_answers_as_astropys_scan() -> None:
    """Every keyword of every astropy test header, a keyword inserted again before the first
    (astropy's index then lists positions out of order), a field-specified one, and one that
    is not there."""
    scan = fits.Header.index
    extra = fits.Header([("NAXIS", 0), ("OBJECT", "a"), ("DP1", "AXIS.1: 1")])
    with pytest.warns(UserWarning, match="already exists"):
        extra.insert(0, ("OBJECT", "b"))
    headers = [*_every_header(), extra]
    asked = 0
    with settled_lookups():
        assert fits.Header.index is not scan
        for header in headers:
            for keyword in [*header.keys(), "DP1.AXIS.1", "NOSUCHKW"]:
                try:
                    expected: object = scan(header, keyword)
                except ValueError:
                    expected = ValueError
                try:
                    got: object = header.index(keyword)
                except ValueError:
                    got = ValueError
                assert got == expected, (keyword, header)
                asked += 1
    assert asked > 1000
    assert extra.index("OBJECT") == 0
    assert fits.Header.index is scan
