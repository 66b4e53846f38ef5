"""ContrastGeo: few-shot geolocation of social-media posts (ContrastGeo + CSP), as a Hugging Face model.

Importing the package registers the model with the Auto classes, so `AutoModel.from_pretrained(folder)` works
without `trust_remote_code` when the package is installed; saved folders also carry the modeling code
(`auto_map`) for `trust_remote_code=True` loading where it is not.
"""

from transformers import AutoConfig, AutoModel

from .configuration_contrastgeo import ContrastGeoConfig
from .modeling_contrastgeo import (
    ContrastGeoModel,
    ContrastGeoOutput,
    ContrastGeoPreTrainedModel,
    CSPOutput,
    LocationPriorOutput,
)
from .pipeline_geolocation import GeolocationPipeline

AutoConfig.register(ContrastGeoConfig.model_type, ContrastGeoConfig, exist_ok=True)
AutoModel.register(ContrastGeoConfig, ContrastGeoModel, exist_ok=True)

__all__ = [
    "ContrastGeoConfig",
    "ContrastGeoModel",
    "ContrastGeoOutput",
    "ContrastGeoPreTrainedModel",
    "CSPOutput",
    "GeolocationPipeline",
    "LocationPriorOutput",
]
