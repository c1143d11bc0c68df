"""A reproducible study of vanishing gradients in deep MLPs."""
