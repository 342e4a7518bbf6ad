"""What every run records and checks, for the local model classes and the served ones alike:
audio controls, batch verification, RTFx and the model identity that scopes the request cache."""
