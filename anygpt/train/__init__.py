"""Training: every training loop of the package (the LLM here, the small codecs in codecs/, the judges
in judges/), sharing one schedule, one checkpoint layout and one metrics writer.

    recipe.py      TrainConfig (typed, every field overridable) and the shipped recipes/*.toml
    data.py        packed rows -> the exact batches of step s on process r (resumable order)
    trainer.py     the loop on accelerate: one CPU process, DDP, FSDP or DeepSpeed
    schedule.py    the learning rate of step s (warm-up, cosine to a floor), for every trainer
    checkpoint.py  atomic checkpoints and exact resumption; the one tmp-and-rename helper
    metrics.py     JSON lines, progress, TensorBoard, the loss-curve plots
    finetune.py    full fine-tuning or LoRA with the new vocabulary rows trainable
    command.py     `anygpt train`
    codecs/        the small codecs' recipes, loop, export and probe (`anygpt codecs train|eval|ship|probe`)
    judges/        the judges' training and calibration (`anygpt eval judges-train`, `anygpt eval judges`)
"""
