"""Training: one recipe config, one loop, for pretraining and instruction tuning.

    recipe.py      TrainConfig (typed, every field overridable) and the shipped recipes/*.toml
    data.py        packed rows -> the exact batches of step s on process r (resumable order)
    trainer.py     the loop on accelerate: one CPU process, DDP, FSDP or DeepSpeed
    checkpoint.py  atomic checkpoints and exact resumption
    metrics.py     JSON lines, TensorBoard, the loss-curve plot
    finetune.py    full fine-tuning or LoRA with the new vocabulary rows trainable
    command.py     `anygpt train`
"""
