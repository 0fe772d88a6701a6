"""Model cfgs, the shipped default binary model and the demo clip (package data)."""
