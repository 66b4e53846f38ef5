"""The `transformers` pipeline of ContrastGeo: task `"geolocation"`.

```python
from transformers import pipeline
geolocator = pipeline("geolocation", model="path/or/hub-id", trust_remote_code=True)
geolocator("Going to the Husker game tonight!", top_k=3)
# -> [{"name": "Lincoln, NE", "latitude": 40.8, "longitude": -96.7, "score": 0.61}, ...]
geolocator(["post one", "post two"], places="geonames:CH", batch_size=32)   # one list per post
```

The pipeline returns exactly what `ContrastGeoModel.geolocate` returns for the same arguments: a string gives the
list of records of that post, a list of strings gives one list per post (one `geolocate` call), and any other
iterable of strings (a generator, `KeyDataset`, `dataset["text"]`) is streamed: a generator of one list per post,
each group of `min_posts_per_call` posts being one `geolocate` call.

Parameters (at construction or per call): `top_k`, `places` (None = the model's label set, `"geonames"`,
`"geonames:CC"`, or a list/table of places with name, latitude, longitude), `batch_size`, `rerank`,
`rerank_top_k`, `place_prior`.

How it is found:
- installed package: importing `modeling_contrastgeo` registers the task in `PIPELINE_REGISTRY`, so
  `pipeline("geolocation", model=model)` works for a model object or folder.
- saved folder / Hub repo: `config.json` carries `custom_pipelines` and the folder carries this file, so
  `pipeline("geolocation", model=folder, trust_remote_code=True)` works where the package is not installed.

This file travels with the model as remote code: relative imports only.
"""

import math
from itertools import islice

from transformers import AutoModel, Pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .places import check_posts_container, validate_texts

GEOLOCATION_TASK = "geolocation"
DEFAULT_BATCH_SIZE = 64


def geolocation_custom_pipelines() -> dict:
    """The `custom_pipelines` entry of config.json that lets `pipeline("geolocation", model=folder,
    trust_remote_code=True)` load `GeolocationPipeline` from the folder's copy of this file."""
    return {
        GEOLOCATION_TASK: {
            "impl": f"{__name__.rsplit('.', 1)[-1]}.GeolocationPipeline",
            "pt": ["AutoModel"],
            "type": "text",
        }
    }


class GeolocationPipeline(Pipeline):
    """Where was each post written? Wraps `ContrastGeoModel.geolocate` as a `transformers` pipeline.

    Call it with a post, a list of posts or an iterable of posts; keyword arguments `top_k`, `places`, `batch_size`,
    `rerank`, `rerank_top_k`, `place_prior` and `allow_blank` mean what they mean in `geolocate` and may also be
    given when the pipeline is built.
    """

    # The model carries its own tokenizer (saved beside its weights): the pipeline does not load a second one.
    _load_tokenizer = False
    # A streamed input is geolocated in groups of at least this many posts, one `geolocate` call per group. Each
    # call validates and fingerprints the gallery (a tenth of a second for the 34k worldwide GeoNames places), so
    # groups are large; a group is a whole number of batches, so only the input's last batch can be short.
    min_posts_per_call = 1024

    def __init__(self, model, tokenizer=None, **kwargs):
        super().__init__(model, tokenizer=tokenizer, **kwargs)
        if self.tokenizer is not None:
            # A tokenizer handed to the pipeline must be the one the model's geolocate uses.
            self.model.tokenizer = self.tokenizer
        else:
            self.tokenizer = self.model.tokenizer

    def _sanitize_parameters(self, top_k=None, places=None, rerank=None, rerank_top_k=None, place_prior=None,
                             allow_blank=None):
        forward_params = {}
        if allow_blank is not None:
            forward_params["allow_blank"] = allow_blank
        if place_prior is not None:
            forward_params["place_prior"] = place_prior
        if top_k is not None:
            forward_params["top_k"] = top_k
        if places is not None:
            forward_params["places"] = places
        if rerank is not None:
            forward_params["rerank"] = rerank
        if rerank_top_k is not None:
            forward_params["rerank_top_k"] = rerank_top_k
        return {}, forward_params, {}

    def __call__(self, posts, batch_size: int | None = None, **kwargs):
        """Geolocate a post (-> its list of records), a list of posts (-> one list per post) or an iterable of posts
        (-> a generator of one list per post, consumed lazily)."""
        if batch_size is None:
            batch_size = self._batch_size if self._batch_size is not None else DEFAULT_BATCH_SIZE
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        _, forward_params, _ = self._sanitize_parameters(**kwargs)
        forward_params = {**self._forward_params, **forward_params, "batch_size": batch_size}
        if isinstance(posts, str):
            return self._geolocate_group([posts], 0, forward_params)[0]
        if isinstance(posts, (list, tuple)):
            # One geolocate call over the whole list: the same batches, hence the same numbers, as geolocate's.
            return self._geolocate_group(posts, 0, forward_params)
        if posts is None or not hasattr(posts, "__iter__"):
            raise ValueError(f"posts must be a string, a list of strings or an iterable of strings, got {posts!r}")
        check_posts_container(posts)
        return self._stream(posts, forward_params)

    def _geolocate_group(self, posts, first_index, forward_params):
        inputs = {"posts": posts, "first_index": first_index, "allow_blank": forward_params.get("allow_blank", False)}
        return self.run_single(inputs, {}, forward_params, {})

    def _stream(self, posts, forward_params):
        batch_size = forward_params["batch_size"]
        group_size = batch_size * math.ceil(self.min_posts_per_call / batch_size)
        # Resolve the gallery once (a "geonames" spec is read from the gazetteer), not once per group.
        forward_params = {**forward_params, "places": self.model.resolve_places(forward_params.get("places"))}
        iterator = iter(posts)
        first_index = 0
        while group := list(islice(iterator, group_size)):
            yield from self._geolocate_group(group, first_index, forward_params)
            first_index += len(group)

    def preprocess(self, inputs):
        return {"posts": validate_texts(inputs["posts"], inputs["allow_blank"], first_index=inputs["first_index"])}

    def _forward(self, model_inputs, **forward_params):
        return {"predictions": self.model.geolocate(model_inputs["posts"], **forward_params)}

    def postprocess(self, model_outputs):
        return model_outputs["predictions"]


# The remote-code copy of this file must not replace the installed package's registration (or vice versa).
if GEOLOCATION_TASK not in PIPELINE_REGISTRY.supported_tasks:
    PIPELINE_REGISTRY.register_pipeline(
        GEOLOCATION_TASK, pipeline_class=GeolocationPipeline, pt_model=AutoModel, type="text"
    )
