"""While a file is read, astropy's card module asks a snapshot of the configuration: the same
answers, asked of astropy's configuration once, and the module is given its own back after."""

from __future__ import annotations

import threading
from contextlib import nullcontext
from pathlib import Path

import pytest
from astropy.config.configuration import ConfigItem
from astropy.io import fits
from astropy.io.fits import card as card_module

from fits_storage.ingest import fitsread
from fits_storage.ingest.fitsconf import settled_card_conf
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
    before = card_module.conf
    _read(gmos_source())
    assert card_module.conf is before


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
    monkeypatch.setattr(fitsread, "settled_card_conf", nullcontext)
    try:
        plain = _read(path)
    except Exception as exc:  # noqa: BLE001
        plain = repr(exc)
    assert settled == plain


def test_the_snapshot_holds_the_configuration_of_when_the_file_was_begun() -> None:
    image = "OBJECT  = 'M31     '           / a value with trailing blanks"
    with fits.conf.set_temp("strip_header_whitespace", False):
        with settled_card_conf():
            assert fits.Card.fromstring(image).value == "M31     "
    with settled_card_conf():
        assert fits.Card.fromstring(image).value == "M31"


def test_blocks_in_two_threads_share_one_snapshot_and_restore_it_once() -> None:
    before = card_module.conf
    inside, release = threading.Event(), threading.Event()
    seen: list[object] = []

    def other() -> None:
        with settled_card_conf():
            seen.append(card_module.conf)
            inside.set()
            release.wait(30)

    thread = threading.Thread(target=other)
    thread.start()
    assert inside.wait(30)
    with settled_card_conf():
        seen.append(card_module.conf)
    assert card_module.conf is seen[0]  # the other thread's block is still open
    release.set()
    thread.join(30)
    assert seen[0] is seen[1] is not before
    assert card_module.conf is before
