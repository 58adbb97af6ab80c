"""The plain-card check says "nothing to report" only where astropy's own check agrees, and the
verification report is the text astropy gives without it."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
from astropy.io import fits
from hypothesis import given, settings
from hypothesis import strategies as st

from fits_storage.ingest import verify
from fits_storage.ingest.cardcheck import is_plain
from tests.fitsdata import (
    astropy_data_dir,
    astropy_fits_names,
    gmos_header,
    gmos_source,
    igrins2_header,
)


def _astropy_finds(image: str) -> list[str]:
    """What astropy's verification of a card read from ``image`` reports (a fresh card)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card = fits.Card.fromstring(image)
        return [text for _, text in card._verify("warn").iter_lines()]


def _real_cards() -> list[str]:
    images = []
    paths = [astropy_data_dir() / n for n in astropy_fits_names()] + [gmos_source()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            try:
                with fits.open(path, memmap=False) as hdulist:
                    cards = [c for hdu in hdulist for c in hdu.header._cards]
                    images += [c._image for c in cards if c._image is not None]
            except Exception:  # noqa: BLE001, S112 - astropy's deliberately broken files
                continue
    for header in (gmos_header(), igrins2_header()):
        parsed = fits.Header.fromstring(header.tostring())
        images += [c._image for c in parsed._cards]
    return images


REAL_CARDS = _real_cards()

NOT_PLAIN = [
    "lowcase =                    1 / a keyword astropy upper-cases",
    "EXPTIME =                  NaN / not a FITS number",
    "AIRMASS =                 -Inf",
    "OBJECT  = 'unterminated",
    "BAD KEY =                    1",
    "NOEQUAL                      1",
    "EQUAL  =                     1 / '=' in column 8",
    "HIERARCH ESO DET CHIP = 1",
    "CONTINUE  'more text'",
    "COMMENT \x07 a bell",
    "DATE    = '2026-12-03' / caf\xe9",
    "FLOATS  =                1.0e5 / lower-case exponent",
]


def test_real_files_cards_are_almost_all_plain_and_astropy_agrees() -> None:
    plain = [image for image in REAL_CARDS if is_plain(fits.Card.fromstring(image))]
    assert len(REAL_CARDS) > 3000 and len(plain) > 0.9 * len(REAL_CARDS)
    disagree = [image for image in plain if _astropy_finds(image)]
    assert disagree == []


@pytest.mark.parametrize("image", NOT_PLAIN)
def test_cards_astropy_complains_of_are_left_to_astropy(image: str) -> None:
    card = fits.Card.fromstring(image.ljust(80))
    assert not is_plain(card)


def test_a_card_changed_in_memory_or_longer_than_one_image_is_not_plain() -> None:
    card = fits.Card.fromstring("EXPTIME =                 10.0".ljust(80))
    assert is_plain(card)
    card.value = 20.0
    assert not is_plain(card)
    long = fits.Header.fromstring(
        "LONGSTR = 'abc&'".ljust(80) + "CONTINUE  'def'".ljust(80) + "END".ljust(80)
    )
    assert not is_plain(long.cards[0])


_PRINTABLE = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
_KEYWORDS = st.sampled_from(
    ["EXPTIME ", "COMMENT ", "HISTORY ", "        ", "A-B_9   ", "OBJECT  "]
)


@settings(max_examples=1000, deadline=None)
@given(
    keyword=_KEYWORDS | st.text(_PRINTABLE, min_size=8, max_size=8),
    indicator=st.sampled_from(["= ", "=", " =", "  "]),
    rest=st.text(st.sampled_from(list("'/ ()+-.,0123456789DEFTabc&")), max_size=70),
)
def test_no_card_called_plain_gets_a_complaint_from_astropy(
    keyword: str, indicator: str, rest: str
) -> None:
    image = (keyword + indicator + rest)[:80].ljust(80)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        card = fits.Card.fromstring(image)
        if is_plain(card):
            assert _astropy_finds(image) == []


def _reports(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            hdulist = fits.open(path, memmap=False, lazy_load_hdus=False)
        except Exception:  # noqa: BLE001 - astropy's deliberately broken files
            return None
    with hdulist:
        return verify.astropy_report(hdulist).text


@pytest.mark.parametrize("name", astropy_fits_names())
def test_the_report_is_astropys_own(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path = astropy_data_dir() / name
    fast = _reports(path)
    monkeypatch.setattr(verify, "skip_plain_cards", lambda header: None)
    assert fast == _reports(path)



def test_cards_of_an_astropy_without_the_attributes_read_are_left_to_astropy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A later astropy that renames what the check reads gets astropy's own verification."""
    from fits_storage.ingest import cardcheck

    card = fits.Card.fromstring("EXPTIME =                 10.0".ljust(80))
    assert is_plain(card)
    monkeypatch.setattr(cardcheck, "_PLAIN", None)
    assert not is_plain(card)
    monkeypatch.undo()
    del card.__dict__["_modified"]
    assert not is_plain(card)
