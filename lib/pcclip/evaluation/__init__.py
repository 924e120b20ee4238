"""Evaluations over cached image embeddings and a model's text tower."""
