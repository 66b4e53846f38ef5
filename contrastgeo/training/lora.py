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

import warnings
from pathlib import Path

TEXT_ENCODER_ATTRIBUTES = {"text_model": "text_encoder_lora", "location_text_model": "location_text_encoder_lora"}


def _encoders(model):
    return [(name, getattr(model, name)) for name in TEXT_ENCODER_ATTRIBUTES if getattr(model, name, None) is not None]


def apply_lora(model, rank: int, alpha: float, dropout: float, target_modules) -> None:
    """Wrap the model's text encoder(s) in LoRA adapters, in place; raises ValueError if no module matches."""
    from peft import LoraConfig, get_peft_model

    for name, encoder in _encoders(model):
        module_names = {module_name.rsplit(".", 1)[-1] for module_name, _ in encoder.named_modules()}
        missing = [target for target in target_modules if target not in module_names]
        if missing:
            raise ValueError(
                f"--lora-target-modules {missing} name no module of the text encoder "
                f"({type(encoder).__name__}); its module names include {sorted(module_names)[:30]}"
            )
        lora_config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout, target_modules=list(target_modules),
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
