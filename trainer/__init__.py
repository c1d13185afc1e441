"""The proposal network q(latents | image), its distributed training, inference and evaluation."""
