"""The text encoder of a ContrastGeo model: building it from its config, pooling its token states into one vector per
text, refusing a pooling the encoder cannot serve, and carrying its own output (hidden states, attentions) back to the
caller, as CLIP's `text_model_output` does."""

import torch
from torch import nn
from transformers import AutoModel
from transformers.utils import ModelOutput

# A causal encoder gives the first position of two inputs that differ only after it bit-identical states; in every
# bidirectional family checked (random tiny models included) they differ by more than 4e-3 of the state's size. A
# tolerance far below that errs towards accepting the encoder: a missed refusal only leaves today's behaviour.
_CAUSAL_PROBE_TOLERANCE = 1e-5
# What follows the shared first token in the two probe inputs, as offsets from it in the vocabulary.
_CAUSAL_PROBE_CONTINUATIONS = ((1, 2, 3), (4, 5, 6))


def build_text_encoder(config) -> nn.Module:
    """The randomly initialised encoder of `config.text_config`, without its pooler."""
    text_config = config.text_config
    if getattr(text_config, "is_encoder_decoder", False):
        # AutoModel builds encoder and decoder, and the decoder fails inside transformers without decoder inputs.
        name = config.text_encoder_name_or_path or text_config.model_type
        raise ValueError(f"the text encoder {name} is an encoder-decoder model ({text_config.model_type}): "
                         "ContrastGeo pools the token states of an encoder-only model (BERT, RoBERTa, DeBERTa, "
                         "ModernBERT, ...); give one of those")
    encoder = AutoModel.from_config(text_config)
    # The pooler is unused (we pool token states ourselves); unused parameters break DDP and waste memory.
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None
    return encoder


def pool_token_states(token_states, attention_mask, pooling: str) -> torch.Tensor:
    """(B, H) one vector per text: the mask-aware mean of its token states, or the state of its first token."""
    if pooling == "cls":
        # The first token the mask keeps: a left-padding tokenizer puts a short text's padding before its [CLS].
        first = attention_mask.long().argmax(dim=1)
        return token_states[torch.arange(token_states.shape[0], device=token_states.device), first]
    mask = attention_mask.unsqueeze(-1).to(token_states.dtype)
    return (token_states * mask).sum(1) / mask.sum(1).clamp_min(1e-9)


@torch.no_grad()
def first_token_sees_later_tokens(encoder) -> bool:
    """Whether the state of the first position changes when only the tokens after it change: False for a causal
    (decoder-only) encoder such as GPT-2, whose first token attends to itself alone, whatever its weights.

    No config flag says it (GPT-2's `is_decoder` is False), so two 4-token inputs that share their first token go
    through the encoder, each alone, so that a causal encoder computes their first positions identically. They run
    in eval mode (no dropout, hence no random draws), and every module gets its own mode back."""
    embedding_weight = encoder.get_input_embeddings().weight
    vocab_size = embedding_weight.shape[0]
    first_token = vocab_size // 2  # mid-vocabulary: an ordinary token, not padding or a special token at either end
    modes = {module: module.training for module in encoder.modules()}
    encoder.eval()
    try:
        first_states = []
        for continuation in _CAUSAL_PROBE_CONTINUATIONS:
            token_ids = [first_token] + [(first_token + offset) % vocab_size for offset in continuation]
            input_ids = torch.tensor([token_ids], device=embedding_weight.device)
            output = encoder(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), return_dict=True)
            first_states.append(output.last_hidden_state[0, 0].float())
    finally:
        for module, training in modes.items():
            module.training = training
    difference = (first_states[0] - first_states[1]).abs().max()
    return bool(difference > _CAUSAL_PROBE_TOLERANCE * first_states[0].abs().max())


def check_pooling_fits_encoder(encoder, config) -> None:
    """ValueError when `pooling="cls"` meets a causal encoder, whose first token sees nothing after it.

    Nothing is checked while the weights are placeholders (the meta device, from which `from_pretrained` builds a
    model before loading its weights, or DeepSpeed ZeRO-3 partitions): no forward pass can run on them."""
    if config.pooling != "cls":
        return
    embedding_weight = encoder.get_input_embeddings().weight
    if embedding_weight.is_meta or embedding_weight.numel() == 0:
        return
    if not first_token_sees_later_tokens(encoder):
        family = config.text_config.model_type
        name = config.text_encoder_name_or_path or family
        raise ValueError(
            f"pooling='cls' cannot pool the causal (decoder-only) text encoder {name} ({family}, "
            f"{type(encoder).__name__}): its first token attends to nothing after it, so every post would be embedded "
            "as its first token alone (the same embedding for all posts that start with the same token, e.g. [CLS]); "
            "use pooling='mean' (the default), which averages the states of all tokens"
        )


class WithTextModelOutput(ModelOutput):
    """A ModelOutput with a `text_model_output` field (the text encoder's own `BaseModelOutput`, when asked for):
    `to_tuple()` gives it as a nested tuple, as CLIPOutput does."""

    def to_tuple(self) -> tuple:
        return tuple(value.to_tuple() if isinstance(value, ModelOutput) else value for value in self.values())


__all__ = ["WithTextModelOutput", "build_text_encoder", "check_pooling_fits_encoder", "first_token_sees_later_tokens",
           "pool_token_states"]
