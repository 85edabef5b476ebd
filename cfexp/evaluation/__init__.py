"""After a sweep: chosen configurations retrained on seeded folds, nested search, and the champion's test lead."""
