"""Coordinate location encoders of CSP (Mai et al., ICML 2023): a multi-scale sinusoidal position encoding
followed by a residual feed-forward network.

Input is always ``latlon`` of shape (N, 2) holding [latitude, longitude] in degrees. The position encoding is
computed with torch on the input's device, in float32 or better (float64 input stays float64), and laid out
scale-major: feature ``s * k + j`` is feature ``j`` of scale ``s`` (``k`` features per scale, listed below).

Scales. For ``S = num_scales`` the radii grow geometrically from ``min_radius`` to ``max_radius``::

    r_s = min_radius * (max_radius / min_radius) ** (s / (S - 1)),   s = 0 .. S-1   (S = 1: r_0 = max_radius)

Planar kinds (Space2Vec, Mai et al. ICLR 2020, with CSP's conventions): coordinates stay in degrees and the
angle of scale ``s`` is ``coordinate / r_s`` (as in the CSP code), so with ``max_radius = 360`` the coarsest
wave is longer than the globe and never repeats. Defaults: ``min_radius = 0.1`` (CSP's setting).

- ``"grid"`` (k = 4): ``[sin(lon/r_s), cos(lon/r_s), sin(lat/r_s), cos(lat/r_s)]``.
- ``"theory"`` (k = 6): unit vectors a_j at 0, 120 and 240 degrees in the (longitude, latitude) plane,
  ``a_0 = (1, 0)``, ``a_1 = (-1/2, sqrt(3)/2)``, ``a_2 = (-1/2, -sqrt(3)/2)``; for j = 0, 1, 2 the pair
  ``[sin(<a_j, x>/r_s), cos(<a_j, x>/r_s)]`` with ``x = (lon, lat)``.

Spherical kinds (Sphere2Vec, Mai et al. 2023, ISPRS J.): phi and lambda are latitude and longitude in radians.
Here ``r_s`` is the wavelength in degrees of scale ``s``: the scaled angles are::

    phi_s    = phi    * f_s          f_s = 360 / r_s
    lambda_s = lambda * n_s          n_s = max(1, round(f_s))

so ``max_radius = 360`` makes the coarsest scale the plain sphere (sphereC's coarsest terms are the point's
3-D unit vector). The reference code writes the angle as ``radians / r'`` with ``r'`` geometric between its own
min/max radius; that is this formula with ``r' = r_s / 360`` (its ``max_radius = 1`` is our 360). One
deliberate difference: the reference scales longitude by the unrounded frequency, which makes every scale with a
non-integer frequency jump at the antimeridian (longitude -180 and 180 are one place but get different
encodings). Rounding the longitude frequency to an integer keeps every term 2*pi-periodic in longitude, so the
spherical kinds are continuous everywhere on the sphere. Default ``min_radius = 0.5`` degrees (~55 km at the
equator); ``max_radius`` may not exceed 360 (a longer longitude wave cannot close around the globe).

- ``"sphereC"`` (k = 3): ``[sin phi_s, cos phi_s cos lambda_s, cos phi_s sin lambda_s]``.
- ``"sphereC+"`` (k = 6): ``[sin phi_s, cos phi_s, sin lambda_s, cos lambda_s,
  cos phi_s cos lambda_s, cos phi_s sin lambda_s]`` (sphereC plus the grid terms; sin phi_s appears once).
- ``"sphereM"`` (k = 5): ``[sin phi_s, cos phi_s cos lambda, cos phi cos lambda_s, cos phi_s sin lambda,
  cos phi sin lambda_s]``.
- ``"sphereM+"`` (k = 8): ``[sin phi_s, cos phi_s, sin lambda_s, cos lambda_s, cos phi_s cos lambda,
  cos phi cos lambda_s, cos phi_s sin lambda, cos phi sin lambda_s]``.

``"wrap"`` (Mac Aodha et al., ICCV 2019; one scale, k = 4, radii unused):
``[sin(pi lon/180), cos(pi lon/180), sin(pi lat/180), cos(pi lat/180)]``. Latitude is divided by 180 rather than
the original 90 because ``pi lat/90`` maps the two poles to the same vector.
"""

import math

import torch
from torch import nn

PLANAR_KINDS = ("grid", "theory")
SPHERICAL_KINDS = ("sphereC", "sphereC+", "sphereM", "sphereM+")
POSITION_ENCODING_KINDS = PLANAR_KINDS + SPHERICAL_KINDS + ("wrap",)

FEATURES_PER_SCALE = {"grid": 4, "theory": 6, "sphereC": 3, "sphereC+": 6, "sphereM": 5, "sphereM+": 8}
WRAP_ENCODING_DIM = 4

DEFAULT_MAX_RADIUS = 360.0
PLANAR_DEFAULT_MIN_RADIUS = 0.1
SPHERICAL_DEFAULT_MIN_RADIUS = 0.5
DEFAULT_MIN_RADIUS = {
    **{kind: PLANAR_DEFAULT_MIN_RADIUS for kind in PLANAR_KINDS},
    **{kind: SPHERICAL_DEFAULT_MIN_RADIUS for kind in SPHERICAL_KINDS},
    "wrap": None,
}
FULL_CIRCLE_DEGREES = 360.0

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}

# Unit vectors at 0, 120 and 240 degrees, written exactly rather than through cos/sin of rounded angles.
_THEORY_UNIT_VECTORS = ((1.0, 0.0), (-0.5, math.sqrt(3.0) / 2.0), (-0.5, -math.sqrt(3.0) / 2.0))


def _check_kind(kind: str) -> None:
    if kind not in POSITION_ENCODING_KINDS:
        raise ValueError(f"unknown position encoding kind {kind!r}; valid kinds: {', '.join(POSITION_ENCODING_KINDS)}")


def _check_positive_int(value, name: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_radii(kind: str, min_radius: float, max_radius: float) -> None:
    if not (math.isfinite(min_radius) and math.isfinite(max_radius) and 0 < min_radius <= max_radius):
        raise ValueError(
            f"radii must satisfy 0 < min_radius <= max_radius (finite), got min_radius={min_radius}, "
            f"max_radius={max_radius}"
        )
    if kind in SPHERICAL_KINDS and max_radius > FULL_CIRCLE_DEGREES:
        raise ValueError(
            f"max_radius={max_radius} is too large for {kind!r}: the spherical kinds take radii as wavelengths in "
            f"degrees, and a wavelength over {FULL_CIRCLE_DEGREES:g} cannot close around the globe"
        )


def position_encoding_dim(kind: str, num_scales: int) -> int:
    """Number of features of the position encoding ``kind`` with ``num_scales`` scales ("wrap" has one scale)."""
    _check_kind(kind)
    _check_positive_int(num_scales, "num_scales", 1)
    if kind == "wrap":
        return WRAP_ENCODING_DIM
    return FEATURES_PER_SCALE[kind] * num_scales


def validate_latlon(latlon: torch.Tensor, what: str = "location") -> None:
    """Raise ValueError unless ``latlon`` is a real (N, 2) tensor of finite [latitude, longitude] degrees with
    latitude in [-90, 90] and longitude in [-180, 180]; the message names the first bad row and its value."""
    if not isinstance(latlon, torch.Tensor):
        raise TypeError(f"{what} coordinates must be a torch.Tensor of shape (N, 2), got {type(latlon).__name__}")
    if latlon.ndim != 2 or latlon.shape[1] != 2:
        raise ValueError(
            f"{what} coordinates must have shape (N, 2) [latitude, longitude], got shape {tuple(latlon.shape)}"
        )
    if latlon.dtype == torch.bool or latlon.is_complex():
        raise ValueError(f"{what} coordinates must be real numbers in degrees, got dtype {latlon.dtype}")
    latitude, longitude = latlon[:, 0], latlon[:, 1]
    bad_latitude = ~torch.isfinite(latitude) | (latitude.abs() > 90)
    bad_longitude = ~torch.isfinite(longitude) | (longitude.abs() > 180)
    bad_rows = bad_latitude | bad_longitude
    if not bool(bad_rows.any()):
        return
    row = int(bad_rows.nonzero()[0, 0])
    latitude_value, longitude_value = float(latitude[row]), float(longitude[row])
    if not math.isfinite(latitude_value):
        raise ValueError(f"{what} {row}: latitude {latitude_value} is not a finite number")
    if not math.isfinite(longitude_value):
        raise ValueError(f"{what} {row}: longitude {longitude_value} is not a finite number")
    if abs(latitude_value) > 90:
        hint = " (columns must be [latitude, longitude]; were they swapped?)" if abs(longitude_value) <= 90 else ""
        raise ValueError(f"{what} {row}: latitude {latitude_value} is outside [-90, 90]{hint}")
    raise ValueError(f"{what} {row}: longitude {longitude_value} is outside [-180, 180]")


def _geometric_radii(num_scales: int, min_radius: float, max_radius: float) -> tuple:
    if num_scales == 1:
        return (float(max_radius),)
    ratio = max_radius / min_radius
    return tuple(min_radius * ratio ** (scale / (num_scales - 1)) for scale in range(num_scales))


def _planar_encoding(latitude, longitude, kind, radii):
    if kind == "grid":
        scaled_longitude, scaled_latitude = longitude / radii, latitude / radii
        return [scaled_longitude.sin(), scaled_longitude.cos(), scaled_latitude.sin(), scaled_latitude.cos()]
    features = []
    for along_longitude, along_latitude in _THEORY_UNIT_VECTORS:
        angle = (along_longitude * longitude + along_latitude * latitude) / radii
        features += [angle.sin(), angle.cos()]
    return features


def _spherical_encoding(latitude, longitude, kind, latitude_frequencies, longitude_frequencies):
    phi, lam = torch.deg2rad(latitude), torch.deg2rad(longitude)
    phi_s, lam_s = phi * latitude_frequencies, lam * longitude_frequencies
    sin_phi_s, cos_phi_s, sin_lam_s, cos_lam_s = phi_s.sin(), phi_s.cos(), lam_s.sin(), lam_s.cos()
    grid_terms = [sin_phi_s, cos_phi_s, sin_lam_s, cos_lam_s]
    if kind in ("sphereC", "sphereC+"):
        sphere_terms = [cos_phi_s * cos_lam_s, cos_phi_s * sin_lam_s]
    else:
        # sphereM mixes one scaled and one unscaled angle in each product.
        cos_phi, cos_lam, sin_lam = phi.cos(), lam.cos(), lam.sin()
        sphere_terms = [cos_phi_s * cos_lam, cos_phi * cos_lam_s, cos_phi_s * sin_lam, cos_phi * sin_lam_s]
    if kind.endswith("+"):
        return grid_terms + sphere_terms
    return [sin_phi_s] + sphere_terms


class LocationEncoderResidualBlock(nn.Module):
    """``LayerNorm(x + Dropout(activation(Linear(x))))``."""

    def __init__(self, hidden_size: int, dropout: float, activation: str):
        super().__init__()
        self.linear = nn.Linear(hidden_size, hidden_size)
        self.activation = ACTIVATIONS[activation]()
        self.dropout = nn.Dropout(dropout)
        self.layer_norm = nn.LayerNorm(hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.layer_norm(hidden_states + self.dropout(self.activation(self.linear(hidden_states))))


class LocationEncoder(nn.Module):
    """Multi-scale position encoding of [latitude, longitude] degrees followed by a residual FFN:
    ``Linear(pe_dim, hidden) -> activation -> num_hidden_layers residual blocks -> Linear(hidden, output_dim)``.

    Args:
        kind: one of ``POSITION_ENCODING_KINDS`` (see the module docstring for each formula).
        num_scales: number of scales S (ignored by "wrap").
        min_radius: smallest scale; ``None`` picks ``DEFAULT_MIN_RADIUS[kind]`` (ignored by "wrap").
        max_radius: largest scale, in degrees (at most 360 for the spherical kinds; ignored by "wrap").
        hidden_size, num_hidden_layers, output_dim, dropout: the FFN.
        activation: "relu", "gelu" or "leaky_relu".
    """

    def __init__(
        self,
        kind: str = "sphereM",
        num_scales: int = 32,
        min_radius: float | None = None,
        max_radius: float = DEFAULT_MAX_RADIUS,
        hidden_size: int = 512,
        num_hidden_layers: int = 2,
        output_dim: int = 256,
        dropout: float = 0.1,
        activation: str = "relu",
    ):
        super().__init__()
        self.position_encoding_dim = position_encoding_dim(kind, num_scales)
        if min_radius is None:
            min_radius = DEFAULT_MIN_RADIUS[kind]
        if kind != "wrap":
            _check_radii(kind, float(min_radius), float(max_radius))
        _check_positive_int(hidden_size, "hidden_size", 1)
        _check_positive_int(num_hidden_layers, "num_hidden_layers", 0)
        _check_positive_int(output_dim, "output_dim", 1)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; valid: {', '.join(ACTIVATIONS)}")

        self.kind = kind
        self.num_scales = num_scales
        self.min_radius = min_radius
        self.max_radius = max_radius
        self.output_dim = output_dim
        # Python floats, not buffers: a bf16 cast of the module must not round the frequencies.
        self.scale_radii = () if kind == "wrap" else _geometric_radii(num_scales, float(min_radius), float(max_radius))
        spherical_radii = self.scale_radii if kind in SPHERICAL_KINDS else ()
        self.latitude_frequencies = tuple(FULL_CIRCLE_DEGREES / radius for radius in spherical_radii)
        self.longitude_frequencies = tuple(float(max(1, round(frequency))) for frequency in self.latitude_frequencies)

        self.input_projection = nn.Linear(self.position_encoding_dim, hidden_size)
        self.activation = ACTIVATIONS[activation]()
        self.residual_blocks = nn.ModuleList(
            [LocationEncoderResidualBlock(hidden_size, dropout, activation) for _ in range(num_hidden_layers)]
        )
        self.output_projection = nn.Linear(hidden_size, output_dim)

    def position_encoding(self, latlon: torch.Tensor) -> torch.Tensor:
        """(N, 2) [latitude, longitude] degrees -> (N, position_encoding_dim) in float32, or float64 for float64
        input, on the input's device. Validates ``latlon`` first."""
        validate_latlon(latlon)
        compute_dtype = torch.float64 if latlon.dtype == torch.float64 else torch.float32
        latlon = latlon.to(compute_dtype)
        # (N, 1) columns broadcast against (S,) per-scale constants into (N, S).
        latitude, longitude = latlon[:, 0:1], latlon[:, 1:2]
        if self.kind == "wrap":
            lam, phi = torch.deg2rad(longitude[:, 0]), torch.deg2rad(latitude[:, 0])
            return torch.stack([lam.sin(), lam.cos(), phi.sin(), phi.cos()], dim=-1)

        def per_scale(values):
            return torch.tensor(values, dtype=compute_dtype, device=latlon.device)

        if self.kind in PLANAR_KINDS:
            features = _planar_encoding(latitude, longitude, self.kind, per_scale(self.scale_radii))
        else:
            features = _spherical_encoding(
                latitude,
                longitude,
                self.kind,
                per_scale(self.latitude_frequencies),
                per_scale(self.longitude_frequencies),
            )
        return torch.stack(features, dim=-1).flatten(1)

    def forward(self, latlon: torch.Tensor) -> torch.Tensor:
        """(N, 2) [latitude, longitude] degrees -> (N, output_dim) location embeddings in the module's dtype."""
        encoding = self.position_encoding(latlon).to(self.input_projection.weight.dtype)
        hidden_states = self.activation(self.input_projection(encoding))
        for block in self.residual_blocks:
            hidden_states = block(hidden_states)
        return self.output_projection(hidden_states)

    def extra_repr(self) -> str:
        if self.kind == "wrap":
            return "kind='wrap'"
        return (
            f"kind={self.kind!r}, num_scales={self.num_scales}, min_radius={self.min_radius}, "
            f"max_radius={self.max_radius}"
        )

