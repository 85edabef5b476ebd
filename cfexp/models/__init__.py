"""The torch modules variants are built from, and how their embeddings start."""
