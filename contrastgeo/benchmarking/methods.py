"""The methods of the benchmark, their settings, and the frozen-embedding ones' scoring.

Every method has a stable name (the `method` field of a record), a group that decides where it runs in the grid
(`reference`: once per task, no support set; `few-shot`: every K and seed; `ablation`: K in ABLATION_SHOTS only),
and `settings`: what its result depends on besides the task and encoder; they go into the record's config hash.

Trained methods (`kind == "trained"`) are ContrastGeo or classifier runs of `train.py`: `train_flags` are the
train.py flags of the run (besides task, shots, seed and paths) and `evaluation` says how the trained model is
scored. Methods with the same `objective` and `train_flags` share one training run per (task, K, seed).
"""

from dataclasses import dataclass, field

import numpy as np

from contrastgeo import baselines
from contrastgeo.training.defaults import MODEL_DEFAULTS
from modeling_contrastgeo.place_prior import log_place_prior

REFERENCE, FEW_SHOT, ABLATION = "reference", "few-shot", "ablation"
# The prompt ContrastGeo trains with (ContrastGeoConfig's default), and the bare place name.
DEFAULT_PROMPT_TEMPLATES = ("A post from {name}.",)
NAME_ONLY_TEMPLATES = ("{name}",)
ABLATION_SHOTS = (4, 16)
# Frozen-encoder methods whose K=16 best is compared with the "best frozen" anchor: the frozen baselines of
# DESIGN.md §4 (prototypes+prompt is newer than the anchors and often beats them, so it is not part of the check).
FROZEN_FEW_SHOT = ("prototypes", "logreg")
RERANK_TOP_K = 10


@dataclass(frozen=True)
class Method:
    name: str
    group: str
    # "counts" (pool label counts), "places" (the places alone), "frozen" (needs frozen embeddings), "text" (raw text
    # only) or "trained"
    kind: str
    description: str
    settings: dict = field(default_factory=dict)
    objective: str | None = None
    train_flags: dict = field(default_factory=dict)
    evaluation: dict = field(default_factory=dict)
    needs_csp: bool = False

    def hash_payload(self):
        return {"method": self.name, "settings": self.settings, "objective": self.objective,
                "train_flags": self.train_flags, "evaluation": self.evaluation}


# C=10 (weak L2): the inputs are unit-length embeddings whose coordinates are small. The anchors of the benchmark
# issue were measured with it (full-pool rows reproduce to 0.1 point); sklearn's default C=1 differs by 1-2 points.
LOGREG_SETTINGS = {"C": 10.0, "max_iter": 1000}
TFIDF_SETTINGS = {"analyzer": "char_wb", "ngram_range": [1, 5], "C": 10.0, "sublinear_tf": True, "max_iter": 1000}
# The place prior as train.py applies it by default, on the model's own probabilities (no temperature fitted on
# labelled posts beyond the K shots, which a few-shot user does not have).
PRIOR_SETTINGS = {"place_prior": "population",
                  "place_prior_weight": MODEL_DEFAULTS["contrastgeo"]["place_prior_weight"], "calibration": "none"}


def _contrastgeo(name, description, group=ABLATION, evaluation=None, needs_csp=False, **train_flags):
    return Method(name, group, "trained", description, objective="contrastgeo", train_flags=train_flags,
                  evaluation=evaluation or {}, needs_csp=needs_csp)


METHODS = [
    Method("majority", REFERENCE, "counts", "most frequent pool class (label counts only; a reference)"),
    Method("population-prior", REFERENCE, "places", "the population prior alone (GeoNames, no text): the most "
           "populous place for every post", settings={"place_prior": "population"}),
    Method("zero-shot", REFERENCE, "frozen", "cosine between frozen post embeddings and place prompts "
           f"{list(DEFAULT_PROMPT_TEMPLATES)}", settings={"prompt_templates": list(DEFAULT_PROMPT_TEMPLATES)}),
    Method("zero-shot-name", REFERENCE, "frozen", "zero-shot with the bare place name as the prompt",
           settings={"prompt_templates": list(NAME_ONLY_TEMPLATES)}),
    Method("logreg-full-pool", REFERENCE, "frozen", "logistic regression on frozen embeddings of the whole pool "
           "(a ceiling reference)", settings=LOGREG_SETTINGS),
    Method("tfidf-logreg-full-pool", REFERENCE, "text", "char n-gram TF-IDF + logistic regression on the whole "
           "pool (a ceiling reference)", settings=TFIDF_SETTINGS),
    Method("prototypes", FEW_SHOT, "frozen", "cosine to the mean of the K support embeddings per class"),
    Method("prototypes+prompt", FEW_SHOT, "frozen", "prototype + place prompt embedding (normalised sum)",
           settings={"prompt_weight": 1.0, "prompt_templates": list(DEFAULT_PROMPT_TEMPLATES)}),
    Method("logreg", FEW_SHOT, "frozen", "logistic regression on frozen embeddings of the support set",
           settings=LOGREG_SETTINGS),
    Method("tfidf-logreg", FEW_SHOT, "text", "char_wb 1-5 n-gram TF-IDF + logistic regression on the support set",
           settings=TFIDF_SETTINGS),
    Method("tfidf-logreg+prior", FEW_SHOT, "text", "tfidf-logreg's probabilities times the population prior "
           "(as train.py's place prior)", settings={**TFIDF_SETTINGS, **PRIOR_SETTINGS}),
    Method("classifier", FEW_SHOT, "trained", "fine-tuned encoder + linear head (train.py --objective classifier; "
           "the supervised formulation of transTagger)", objective="classifier"),
    _contrastgeo("contrastgeo", "ContrastGeo with train.py's defaults (TLC + TLM)", group=FEW_SHOT),
    _contrastgeo("contrastgeo-no-prior", "the default model scored without its place prior", group=FEW_SHOT,
                 evaluation={"place_prior": "none"}),
    _contrastgeo("contrastgeo-tlc-only", "TLC only (tlm_weight 0)", tlm_weight=0.0),
    _contrastgeo("contrastgeo-fusion-sum", "TLM fusion: sum", tlm_fusion="sum"),
    _contrastgeo("contrastgeo-fusion-concat", "TLM fusion: concat", tlm_fusion="concat"),
    _contrastgeo("contrastgeo-fusion-cross-attention", "TLM fusion: cross-attention", tlm_fusion="cross_attention"),
    _contrastgeo("contrastgeo-coordinates", "coordinate location encoder (no CSP pre-training)",
                 location_mode="coordinates"),
    _contrastgeo("contrastgeo-hybrid", "hybrid location encoder: prompt + coordinates (no CSP pre-training)",
                 location_mode="hybrid"),
    _contrastgeo("contrastgeo-coordinates-csp", "coordinate location encoder initialised by CSP pre-training",
                 needs_csp=True, location_mode="coordinates"),
    _contrastgeo("contrastgeo-hybrid-csp", "hybrid location encoder, coordinates initialised by CSP pre-training",
                 needs_csp=True, location_mode="hybrid"),
    _contrastgeo("contrastgeo-rerank", f"default model, top-{RERANK_TOP_K} re-ranked by the TLM head",
                 evaluation={"rerank_top_k": RERANK_TOP_K}),
]
METHODS_BY_NAME = {method.name: method for method in METHODS}


def get_methods(names):
    """Methods by name, in registry order; ValueError naming an unknown one."""
    unknown = [name for name in names if name not in METHODS_BY_NAME]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; known: {', '.join(METHODS_BY_NAME)}")
    return [method for method in METHODS if method.name in set(names)]


def prompt_templates_needed(methods):
    """The prompt template sets (tuples) that these methods score with."""
    return {tuple(m.settings["prompt_templates"]) for m in methods if "prompt_templates" in m.settings}


def _log_prior(method, data):
    return log_place_prior(data.places, method.settings["place_prior"], method.settings.get("place_prior_weight", 1.0))


def frozen_scores(method, data, support_indices=None):
    """(N_query, C) scores of a non-trained method on `data` (a `TaskData` whose `embeddings` and
    `prompt_embeddings[templates]` are filled for frozen methods); support_indices index the pool (a K-shot draw)."""
    num_classes, num_queries = data.num_classes, len(data.query_labels)
    if method.group == REFERENCE:
        train_rows = np.arange(len(data.pool_labels))
    elif support_indices is None:
        raise ValueError(f"method {method.name} needs support_indices (a K-shot draw from the pool)")
    else:
        train_rows = np.asarray(support_indices)
    train_labels = data.pool_labels[train_rows]
    if method.name == "majority":
        return baselines.majority_class_scores(train_labels, num_classes, num_queries)
    if method.kind == "places":
        return np.broadcast_to(_log_prior(method, data), (num_queries, num_classes)).copy()
    if method.kind == "text":
        probabilities = baselines.tfidf_logistic_regression_scores(
            [data.pool_texts[i] for i in train_rows], train_labels, data.query_texts, num_classes,
            analyzer=method.settings["analyzer"], ngram_range=method.settings["ngram_range"],
            C=method.settings["C"], sublinear_tf=method.settings["sublinear_tf"],
            max_iter=method.settings["max_iter"],
        )
        if "place_prior" not in method.settings:
            return probabilities
        return np.log(np.clip(probabilities, 1e-12, None)) + _log_prior(method, data)
    embeddings = data.embeddings
    prompts = data.prompt_embeddings.get(tuple(method.settings.get("prompt_templates", ())))
    if method.name.startswith("zero-shot"):
        return baselines.prompt_similarity_scores(embeddings["query"], prompts)
    if method.name in ("prototypes", "prototypes+prompt"):
        place_embeds = prompts if method.name == "prototypes+prompt" else None
        return baselines.prototype_scores(embeddings["query"], embeddings["pool"][train_rows], train_labels,
                                          num_classes, place_embeds=place_embeds,
                                          prompt_weight=method.settings.get("prompt_weight", 1.0))
    if method.name in ("logreg", "logreg-full-pool"):
        return baselines.logistic_regression_scores(embeddings["pool"][train_rows], train_labels,
                                                    embeddings["query"], num_classes, **method.settings)
    raise ValueError(f"method {method.name} is not scored from frozen embeddings")
