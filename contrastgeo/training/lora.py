"""LoRA (peft) on the text encoder(s), merged back before the model is saved.

Only the text encoder gets adapters: `model.text_model` (and `model.location_text_model` when prompts have their own
encoder) is replaced by a `peft.PeftModel`, which freezes its base weights. Every other trainable part of the model
(projection, coordinate encoder, TLM or classifier head, logit scale) keeps `requires_grad=True` and trains fully,
so no `modules_to_save` is needed. Restricting the adapters to the text encoders also keeps a target name such as
"query" from matching the TLM head's own `query` projection.

Saving: `merge_lora` folds the adapters into the encoder weights (`merge_and_unload`), so the saved folder is a
plain ContrastGeo model that `AutoModel.from_pretrained(..., trust_remote_code=True)` loads without peft.
`--save-lora-adapter` also writes the adapter alone (PEFT format) to `OUTPUT_DIR/text_encoder_lora`: apply it with
`peft.PeftModel.from_pretrained(AutoModel.from_pretrained(<text encoder>), OUTPUT_DIR/"text_encoder_lora")`; it
holds the encoder's change only, the other trained parts live in the merged model.
"""

import json
import logging
import warnings
from pathlib import Path

logger = logging.getLogger(__name__)

TEXT_ENCODER_ATTRIBUTES = {"text_model": "text_encoder_lora", "location_text_model": "location_text_encoder_lora"}
# The default targets, the attention's query and value projections (or its fused query-key-value projection), by
# encoder family (config.json's model_type) where peft's own table (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
# lacks the family.
FAMILY_TARGET_MODULES = {"distilbert": ["q_lin", "v_lin"], "mpnet": ["q", "v"], "albert": ["query", "value"],
                         "modernbert": ["Wqkv"]}
# For a family neither table knows: the first of these name sets that the encoder has all of.
TARGET_MODULE_NAME_SETS = (("query", "value"), ("query_proj", "value_proj"), ("q_lin", "v_lin"), ("q", "v"),
                           ("in_proj",), ("Wqkv",), ("c_attn",))


def default_target_modules(encoder_path):
    """The default LoRA targets of the encoder saved at `encoder_path`, by its model_type; None when its config is
    unreadable or its family is unknown (`apply_lora` then picks them by module names). Resolved before the run, so
    that training_config.json records the modules adapted."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING

    try:
        model_type = json.loads((Path(encoder_path) / "config.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    targets = FAMILY_TARGET_MODULES.get(model_type)
    if targets is None:
        targets = TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING.get(model_type)
    return None if targets is None else list(targets)


def _encoders(model):
    return [(name, getattr(model, name)) for name in TEXT_ENCODER_ATTRIBUTES if getattr(model, name, None) is not None]


def _target_modules_by_name(encoder, module_names) -> list[str]:
    for targets in TARGET_MODULE_NAME_SETS:
        if all(target in module_names for target in targets):
            return list(targets)
    raise ValueError(
        f"LoRA: the text encoder ({type(encoder).__name__}) has none of the attention projections adapted by default "
        f"({[list(targets) for targets in TARGET_MODULE_NAME_SETS]}): name its own with --lora-target-modules NAME..., "
        f"or fine-tune it whole with --no-lora; its module names include {sorted(module_names)[:30]}"
    )


def apply_lora(model, rank: int, alpha: float, dropout: float, target_modules=None) -> None:
    """Wrap the model's text encoder(s) in LoRA adapters, in place; raises ValueError if no module matches.
    `target_modules` None adapts the first of `TARGET_MODULE_NAME_SETS` the encoder has (`default_target_modules`
    names them by family before the run)."""
    from peft import LoraConfig, get_peft_model

    for name, encoder in _encoders(model):
        module_names = {module_name.rsplit(".", 1)[-1] for module_name, _ in encoder.named_modules()}
        targets = target_modules
        if targets is None:
            targets = _target_modules_by_name(encoder, module_names)
            logger.info("LoRA adapts the text encoder's %s modules", targets)
        missing = [target for target in targets if target not in module_names]
        if missing:
            raise ValueError(
                f"--lora-target-modules {missing} name no module of the text encoder "
                f"({type(encoder).__name__}); its module names include {sorted(module_names)[:30]}"
            )
        lora_config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(targets),
                                 bias="none")
        with warnings.catch_warnings():
            # peft reads transformers' deprecated `is_gradient_checkpointing` alias; the warning is theirs, not the
            # user's, and would print on every run.
            warnings.filterwarnings("ignore", "`is_gradient_checkpointing` is deprecated", FutureWarning)
            setattr(model, name, get_peft_model(encoder, lora_config))


def save_lora_adapters(model, output_dir) -> list[Path]:
    """Write each adapted encoder's adapter (adapter_config.json + adapter_model.safetensors)."""
    from peft import PeftModel

    written = []
    for name, encoder in _encoders(model):
        if isinstance(encoder, PeftModel):
            folder = Path(output_dir) / TEXT_ENCODER_ATTRIBUTES[name]
            encoder.save_pretrained(folder, safe_serialization=True)
            written.append(folder)
    return written


def merge_lora(model) -> None:
    """Fold the adapters into the encoder weights and put the plain encoder(s) back, in place."""
    from peft import PeftModel

    for name, encoder in _encoders(model):
        if isinstance(encoder, PeftModel):
            setattr(model, name, encoder.merge_and_unload())
