"""Tests for the CSP coordinate location encoders. Expected encodings are recomputed here with ``math`` from the
formulas in the module docstring, never through the module's own helpers."""

import math

import pytest
import torch

from modeling_contrastgeo.location_encoding import (
    POSITION_ENCODING_KINDS,
    LocationEncoder,
    position_encoding_dim,
    validate_latlon,
)

SPHERICAL = ["sphereC", "sphereC+", "sphereM", "sphereM+"]
# [latitude, longitude]: origin, both poles, Zurich, Sydney, a point near the antimeridian.
POINTS = [(0.0, 0.0), (90.0, 0.0), (-90.0, 45.0), (47.37, 8.54), (-33.87, 151.21), (-10.0, -170.0)]
NUM_SCALES = 3
PLANAR_RADII = (1.0, 360.0)
# Wavelengths 7, ~50.2 and 360 degrees: latitude frequencies ~51.43, ~7.17 and 1, longitude ones 51, 7 and 1.
SPHERICAL_RADII = (7.0, 360.0)


def small_encoder(kind, **overrides):
    settings = dict(kind=kind, num_scales=4, hidden_size=16, num_hidden_layers=2, output_dim=8, dropout=0.1)
    settings.update(overrides)
    return LocationEncoder(**settings)


def radii(min_radius, max_radius, num_scales):
    return [min_radius * (max_radius / min_radius) ** (s / (num_scales - 1)) for s in range(num_scales)]


def expected_planar(kind, latitude, longitude, min_radius, max_radius, num_scales):
    features = []
    for r in radii(min_radius, max_radius, num_scales):
        if kind == "grid":
            features += [math.sin(longitude / r), math.cos(longitude / r)]
            features += [math.sin(latitude / r), math.cos(latitude / r)]
        else:
            for degrees in (0.0, 120.0, 240.0):
                a = math.radians(degrees)
                angle = (math.cos(a) * longitude + math.sin(a) * latitude) / r
                features += [math.sin(angle), math.cos(angle)]
    return features


def expected_spherical(kind, latitude, longitude, min_radius, max_radius, num_scales):
    phi, lam = math.radians(latitude), math.radians(longitude)
    features = []
    for r in radii(min_radius, max_radius, num_scales):
        frequency = 360.0 / r
        phi_s, lam_s = phi * frequency, lam * max(1, round(frequency))
        if kind == "sphereC":
            scale = [math.sin(phi_s), math.cos(phi_s) * math.cos(lam_s), math.cos(phi_s) * math.sin(lam_s)]
        elif kind == "sphereC+":
            scale = [math.sin(phi_s), math.cos(phi_s), math.sin(lam_s), math.cos(lam_s),
                     math.cos(phi_s) * math.cos(lam_s), math.cos(phi_s) * math.sin(lam_s)]
        elif kind == "sphereM":
            scale = [math.sin(phi_s), math.cos(phi_s) * math.cos(lam), math.cos(phi) * math.cos(lam_s),
                     math.cos(phi_s) * math.sin(lam), math.cos(phi) * math.sin(lam_s)]
        else:
            scale = [math.sin(phi_s), math.cos(phi_s), math.sin(lam_s), math.cos(lam_s),
                     math.cos(phi_s) * math.cos(lam), math.cos(phi) * math.cos(lam_s),
                     math.cos(phi_s) * math.sin(lam), math.cos(phi) * math.sin(lam_s)]
        features += scale
    return features


def expected_wrap(latitude, longitude):
    lam, phi = math.pi * longitude / 180.0, math.pi * latitude / 180.0
    return [math.sin(lam), math.cos(lam), math.sin(phi), math.cos(phi)]


@pytest.mark.parametrize("kind", POSITION_ENCODING_KINDS)
def test_position_encoding_matches_hand_computed_values(kind):
    if kind == "wrap":
        encoder, expected = small_encoder(kind), [expected_wrap(*point) for point in POINTS]
    elif kind in ("grid", "theory"):
        encoder = small_encoder(kind, num_scales=NUM_SCALES, min_radius=PLANAR_RADII[0], max_radius=PLANAR_RADII[1])
        expected = [expected_planar(kind, *point, *PLANAR_RADII, NUM_SCALES) for point in POINTS]
    else:
        encoder = small_encoder(
            kind, num_scales=NUM_SCALES, min_radius=SPHERICAL_RADII[0], max_radius=SPHERICAL_RADII[1]
        )
        expected = [expected_spherical(kind, *point, *SPHERICAL_RADII, NUM_SCALES) for point in POINTS]
    encoding = encoder.position_encoding(torch.tensor(POINTS, dtype=torch.float64))
    assert encoding.dtype == torch.float64
    torch.testing.assert_close(encoding, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    # float32 input is encoded in float32 and agrees to float32 precision.
    encoding32 = encoder.position_encoding(torch.tensor(POINTS, dtype=torch.float32))
    assert encoding32.dtype == torch.float32
    torch.testing.assert_close(encoding32.double(), encoding, rtol=0, atol=1e-4)


def test_zurich_sphere_c_by_hand():
    # One scale at the full circle: sphereC is the point's unit vector on the sphere.
    encoder = small_encoder("sphereC", num_scales=1)
    encoding = encoder.position_encoding(torch.tensor([[47.37, 8.54]], dtype=torch.float64))[0].tolist()
    phi, lam = 47.37 * math.pi / 180, 8.54 * math.pi / 180
    assert encoding == pytest.approx([math.sin(phi), math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam)])
    assert sum(value * value for value in encoding) == pytest.approx(1.0)


@pytest.mark.parametrize("kind", ["grid", "sphereM"])
def test_single_scale_uses_max_radius(kind):
    encoder = small_encoder(kind, num_scales=1, min_radius=2.0, max_radius=180.0)
    encoding = encoder.position_encoding(torch.tensor([[30.0, 60.0]], dtype=torch.float64))[0].tolist()
    if kind == "grid":
        expected = [math.sin(60 / 180), math.cos(60 / 180), math.sin(30 / 180), math.cos(30 / 180)]
    else:
        phi, lam, phi_s, lam_s = math.radians(30), math.radians(60), math.radians(60), math.radians(120)
        expected = [math.sin(phi_s), math.cos(phi_s) * math.cos(lam), math.cos(phi) * math.cos(lam_s),
                    math.cos(phi_s) * math.sin(lam), math.cos(phi) * math.sin(lam_s)]
    assert encoding == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    "kind, per_scale", [("grid", 4), ("theory", 6), ("sphereC", 3), ("sphereC+", 6), ("sphereM", 5), ("sphereM+", 8)]
)
@pytest.mark.parametrize("num_scales", [1, 5])
def test_dims_and_shapes(kind, per_scale, num_scales):
    assert position_encoding_dim(kind, num_scales) == per_scale * num_scales
    encoder = small_encoder(kind, num_scales=num_scales)
    latlon = torch.tensor(POINTS)
    assert encoder.position_encoding(latlon).shape == (len(POINTS), per_scale * num_scales)
    assert encoder(latlon).shape == (len(POINTS), 8)


def test_wrap_dims_and_default_encoder_shapes():
    assert position_encoding_dim("wrap", 32) == 4
    assert small_encoder("wrap").position_encoding(torch.tensor(POINTS)).shape == (len(POINTS), 4)
    encoder = LocationEncoder()
    assert encoder.kind == "sphereM" and encoder.position_encoding_dim == 5 * 32
    assert encoder(torch.tensor(POINTS)).shape == (len(POINTS), 256)
    assert encoder(torch.zeros(0, 2)).shape == (0, 256)


@pytest.mark.parametrize("kind", SPHERICAL + ["wrap"])
def test_antimeridian_periodic_and_continuous(kind):
    encoder = LocationEncoder(kind=kind)  # default radii: the finest wavelength is 0.5 degrees
    latitudes = torch.tensor([-89.0, -47.5, 0.0, 13.3, 65.0], dtype=torch.float64)
    def at(longitude):
        return encoder.position_encoding(torch.stack([latitudes, torch.full_like(latitudes, longitude)], dim=1))
    torch.testing.assert_close(at(-180.0), at(180.0), rtol=0, atol=1e-9)
    # 0.0002 degrees apart across the antimeridian; the fastest term (720 cycles per circle) moves < 3e-3.
    assert (at(179.9999) - at(-179.9999)).abs().max() < 3e-3


def test_grid_is_not_periodic_in_longitude():
    # The planar kinds treat longitude as a line, so the antimeridian check above does distinguish.
    encoder = small_encoder("grid")
    east, west = encoder.position_encoding(torch.tensor([[10.0, 180.0], [10.0, -180.0]], dtype=torch.float64))
    assert (east - west).abs().max() > 0.1


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    encoder = small_encoder("sphereM")
    encoder.train()
    output = encoder(torch.tensor(POINTS))
    (output * torch.randn_like(output)).sum().backward()
    for name, parameter in encoder.named_parameters():
        assert parameter.grad is not None, name
        assert parameter.grad.abs().sum() > 0, name


def test_dropout_active_in_train_mode_only():
    torch.manual_seed(0)
    encoder = small_encoder("grid", dropout=0.5)
    latlon = torch.tensor(POINTS)
    encoder.train()
    assert not torch.equal(encoder(latlon), encoder(latlon))
    encoder.eval()
    torch.testing.assert_close(encoder(latlon), encoder(latlon), rtol=0, atol=0)


def test_deterministic_given_seed():
    latlon = torch.tensor(POINTS)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(small_encoder("sphereC+").eval()(latlon))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


def test_float64_input_and_bfloat16_module():
    torch.manual_seed(0)
    encoder = small_encoder("sphereM+").eval()
    latlon64 = torch.tensor(POINTS, dtype=torch.float64)
    output = encoder(latlon64)
    assert output.dtype == torch.float32
    torch.testing.assert_close(output, encoder(latlon64.float()), rtol=1e-4, atol=1e-4)
    reference_encoding = encoder.position_encoding(latlon64.float())
    encoder = encoder.to(torch.bfloat16)
    # The encoding itself is not computed in bfloat16 (its frequencies reach 720 cycles per circle).
    torch.testing.assert_close(encoder.position_encoding(latlon64.float()), reference_encoding, rtol=0, atol=0)
    assert encoder(latlon64).dtype == torch.bfloat16


def test_half_precision_input_is_encoded_in_float32():
    encoder = small_encoder("sphereC")
    latlon = torch.tensor(POINTS, dtype=torch.bfloat16)
    encoding = encoder.position_encoding(latlon)
    assert encoding.dtype == torch.float32
    torch.testing.assert_close(encoding, encoder.position_encoding(latlon.float()), rtol=0, atol=0)


def test_integer_coordinates_are_accepted():
    encoder = small_encoder("theory")
    torch.testing.assert_close(
        encoder.position_encoding(torch.tensor([[47, 8]])), encoder.position_encoding(torch.tensor([[47.0, 8.0]]))
    )


@pytest.mark.parametrize(
    "rows, message",
    [
        ([[0.0, 0.0], [123.0, 8.0]], r"location 1: latitude 123\.0 is outside \[-90, 90\]"),
        ([[0.0, -181.0]], r"location 0: longitude -181\.0 is outside \[-180, 180\]"),
        ([[0.0, 0.0], [0.0, 0.0], [float("nan"), 0.0]], r"location 2: latitude nan is not a finite number"),
        ([[10.0, float("inf")]], r"location 0: longitude inf is not a finite number"),
        ([[10.0, float("-inf")]], r"location 0: longitude -inf is not a finite number"),
        ([[8.5, 47.4], [147.0, -33.9]], r"location 1: latitude 147\.0 is outside \[-90, 90\].*swapped"),
        ([[0.0, 0.0], [91.0, 0.0], [0.0, 200.0]], r"location 1: latitude 91\.0"),  # first bad row wins
        ([[0.0, 0.0], [0.0, 200.0], [91.0, 0.0]], r"location 1: longitude 200\.0"),
    ],
)
def test_bad_values_raise(rows, message):
    latlon = torch.tensor(rows)
    with pytest.raises(ValueError, match=message):
        validate_latlon(latlon)
    with pytest.raises(ValueError, match=message):
        small_encoder("sphereM")(latlon)


@pytest.mark.parametrize("shape", [(3,), (2, 3), (4, 1), (2, 2, 2)])
def test_bad_shapes_raise(shape):
    expected = rf"shape \(N, 2\) \[latitude, longitude\], got shape {re_tuple(shape)}"
    with pytest.raises(ValueError, match=expected):
        small_encoder("grid")(torch.zeros(shape))


def re_tuple(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def test_validate_latlon_names_what_and_accepts_the_boundary():
    validate_latlon(torch.tensor([[90.0, 180.0], [-90.0, -180.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"place 0: latitude -90\.5"):
        validate_latlon(torch.tensor([[-90.5, 0.0]]), what="place")
    with pytest.raises(ValueError, match="real numbers"):
        validate_latlon(torch.tensor([[True, False]]))
    with pytest.raises(TypeError, match="torch.Tensor"):
        validate_latlon([[0.0, 0.0]])


def test_bad_configuration_raises():
    with pytest.raises(ValueError, match="valid kinds: grid, theory, sphereC, sphereC\\+, sphereM, sphereM\\+, wrap"):
        position_encoding_dim("hexagon", 4)
    with pytest.raises(ValueError, match="unknown position encoding kind 'sphere'"):
        LocationEncoder(kind="sphere")
    with pytest.raises(ValueError, match="num_scales must be an integer >= 1"):
        LocationEncoder(num_scales=0)
    with pytest.raises(ValueError, match="min_radius <= max_radius"):
        LocationEncoder(kind="grid", min_radius=10.0, max_radius=1.0)
    with pytest.raises(ValueError, match="max_radius=720.0 is too large for 'sphereM'"):
        LocationEncoder(kind="sphereM", max_radius=720.0)
    with pytest.raises(ValueError, match="dropout"):
        LocationEncoder(dropout=1.0)
    with pytest.raises(ValueError, match="unknown activation 'swish'"):
        LocationEncoder(activation="swish")
    # Planar kinds take any positive radii, as in CSP.
    assert small_encoder("grid", max_radius=720.0).position_encoding_dim == 16
