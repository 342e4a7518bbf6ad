"""A stand-in for `vllm serve` that answers only what `prompt_logprobs=true` sends, for tests.

No vLLM runs here (it needs a GPU), and transformers serve has no prompt logprobs. This server
renders the request's messages with the checkpoint's processor the way transformers serve does
(audio parts as data URIs, `add_generation_prompt` / `continue_final_message` from the body), runs
the model once with transformers, and answers in vLLM's format: `prompt_logprobs` holds, per
prompt position, `{token_id: {"logprob", "rank", "decoded_token"}}` for the prompt's own token,
plus the top token when that is another one; the first position is null.
"""

from __future__ import annotations

import http.server
import json
import threading

import torch

from lm_eval_audio.serve.launch import free_port


class FakeVLLM:
    """Start with `FakeVLLM(model_dir)`; `url` is its root; `stop()` closes it."""

    def __init__(self, model_dir) -> None:
        from transformers import AutoProcessor, Qwen2AudioForConditionalGeneration

        self.processor = AutoProcessor.from_pretrained(model_dir)
        self.model = Qwen2AudioForConditionalGeneration.from_pretrained(model_dir).eval()
        self.model_name = str(model_dir)
        self.requests = 0
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                status, answer = fake.answer(body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> tuple[int, dict]:
        """(HTTP status, JSON answer) for one chat request."""
        if body.get("prompt_logprobs") is None or body.get("model") != self.model_name:
            return 400, {"error": {"message": "this stand-in only scores prompt_logprobs requests"}}
        conversation = []
        for m in body["messages"]:
            content = m["content"]
            if isinstance(content, list):
                content = [{"type": "audio", "url": f"data:audio/{p['input_audio']['format']};base64,"
                                                    f"{p['input_audio']['data']}"}
                           if p["type"] == "input_audio" else p for p in content]
            conversation.append({"role": m["role"], "content": content})
        inputs = self.processor.apply_chat_template(
            conversation, add_generation_prompt=body.get("add_generation_prompt", True),
            continue_final_message=body.get("continue_final_message", False),
            tokenize=True, return_dict=True, return_tensors="pt")
        with self._lock, torch.inference_mode():
            self.requests += 1
            logprobs = torch.log_softmax(self.model(**inputs).logits[0].float(), dim=-1)
        ids = inputs["input_ids"][0].tolist()
        tok = self.processor.tokenizer
        positions: list[dict | None] = [None]
        for pos in range(1, len(ids)):
            lp = logprobs[pos - 1]
            token = ids[pos]
            rank = int((lp > lp[token]).sum()) + 1
            entry = {str(token): {"logprob": float(lp[token]), "rank": rank, "decoded_token": tok.decode([token])}}
            if rank != 1:
                top = int(lp.argmax())
                entry[str(top)] = {"logprob": float(lp[top]), "rank": 1, "decoded_token": tok.decode([top])}
            positions.append(entry)
        return 200, {"object": "chat.completion", "model": self.model_name, "prompt_logprobs": positions,
                     "choices": [{"index": 0, "finish_reason": "length",
                                  "message": {"role": "assistant", "content": tok.decode([int(logprobs[-1].argmax())])}}],
                     "usage": {"prompt_tokens": len(ids), "completion_tokens": 1, "total_tokens": len(ids) + 1}}

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()
