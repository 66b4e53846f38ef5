"""What `accelerate launch` / torchrun hand a process, shared by train.py and `contrastgeo predict`."""

import os


def launched_process_count() -> int:
    """How many processes the launcher started (WORLD_SIZE; 1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def accelerate_cpu_flag(cpu_requested: bool) -> bool:
    """The `cpu=` argument for `Accelerator` / `PartialState`."""
    import torch

    # Launched as several processes on a machine without CUDA, accelerate sets up a (gloo) process group only when
    # told cpu=True; otherwise every process would work alone and all would write the same files.
    return bool(cpu_requested) or (launched_process_count() > 1 and not torch.cuda.is_available())
