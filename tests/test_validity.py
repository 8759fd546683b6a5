"""Index validity (issue #20): the distortions are what they say, and the checks read the table right."""

from __future__ import annotations

import pytest
import torch

from dotlib import tables
from dotlib.data import load_photo
from dotlib.metrics import validity


@pytest.fixture(scope="module")
def crops() -> torch.Tensor:
    photo = load_photo("astronaut")
    return torch.stack([photo[:, 64 * i:64 * i + 64, 100:164] for i in range(4)])


def _fine_energy(images: torch.Tensor) -> float:
    return float((images[..., 1:, :] - images[..., :-1, :]).square().mean())


def test_distortions_grow_as_their_names_say(crops) -> None:
    assert torch.equal(validity.distort("clean", crops), crops)
    energies = [_fine_energy(validity.distort(name, crops)) for name in ("clean", *validity.BLUR_SIGMAS)]
    assert energies == sorted(energies, reverse=True) and energies[-1] < 0.2 * energies[0]
    errors = [float((validity.distort(name, crops, seed=1) - crops).square().mean()) for name in validity.NOISE_SIGMAS]
    for error, sigma in zip(errors, validity.NOISE_SIGMAS.values()):
        assert error == pytest.approx(sigma ** 2, rel=0.25)          # AWGN σ², a little less where clipped
    colour = validity.distort("colour", crops)
    assert torch.allclose(colour[:, 1], crops[:, 1]) and (colour[:, 0] >= crops[:, 0]).all()
    for name in ("jpeg10", "jpeg30", "bicubic4", "vae"):
        out = validity.distort(name, crops)
        assert out.shape == crops.shape and 0 < float((out - crops).abs().mean()) < 0.2, name
    with pytest.raises(ValueError, match="known: clean"):
        validity.distort("sepia", crops)


def test_checks_pass_a_paired_error_and_fail_a_blind_index(crops) -> None:
    indices = {"mse": lambda images: float((images - crops).square().mean()), "blind": lambda images: 1.0}
    frame = validity.index_validity(crops, crops[:2], indices=indices)
    assert list(frame.index) == list(validity.DISTORTIONS) and list(frame.columns) == ["mse", "blind"]
    checks = validity.validity_checks(frame)
    assert checks.loc["mse"].all() and not checks.loc["blind"].any()
    blind = validity.cannot_see(frame)
    assert blind["mse"] == [] and blind["blind"] == list(validity.DISTORTIONS[1:])
    text = tables.validity_markdown(frame, checks, blind)
    assert "may carry a claim (on what it sees)" in text and "| mse | yes | yes | yes | yes |" in text and "| blind | no | no | no | no |" in text
    assert "- mse cannot see (scores no higher than clean): none of these" in text


def test_the_weight_free_indices_are_scored_against_the_reference(crops) -> None:
    frame = validity.index_validity(crops[:2], crops[2:], seed=0)
    assert list(frame.columns) == ["swd", "detail"] and (frame.values > 0).all()   # other crops: a floor above 0
    assert frame.at["noise3", "swd"] > frame.at["clean", "swd"] and frame.at["blur3", "detail"] > frame.at["clean", "detail"]


def test_both_indices_are_valid_on_the_held_out_photos() -> None:
    """The study never fits, trains or tunes on the eval photos. Their 64-px tiles, split like a
    checkerboard into 60 distorted and 60 reference tiles (and the other way round): both
    weight-free indices grow with blur and with noise, and put clean below all else but, for
    the grey detail index, at most a colour cast."""
    odd, even = validity.held_out_sets(64)
    assert odd.shape == even.shape == (60, 3, 64, 64) and not torch.equal(odd[0], even[0])
    for distorted, reference in ((odd, even), (even, odd)):
        frame = validity.index_validity(distorted, reference, seed=0)
        checks = validity.validity_checks(frame)
        assert checks["valid"].all(), frame
        blind = validity.cannot_see(frame)
        assert blind["swd"] == [] and set(blind["detail"]) <= {"colour"}
        assert checks.at["detail", "clean_lowest"] == (blind["detail"] == [])
