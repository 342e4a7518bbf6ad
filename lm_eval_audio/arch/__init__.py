"""How each audio-LLM architecture takes audio: its facts table, prompt rendering, placeholder
expansion and own-length encoder. Read by the model layer, `finetune` and `bench`; imports
nothing of the model layer."""
