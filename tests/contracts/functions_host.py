"""What the Functions host does around our functions, done in-process: look the
functions up as the host indexes them (app.get_functions()), hand them real
azure.functions objects, and deliver queue messages from Azurite the way the host's
queue trigger does (host.json: messageEncoding, maxDequeueCount, poison queue)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any, Callable

import azure.functions as func
from azure.functions.queue import QueueMessage

ROOT = Path(__file__).resolve().parents[2]
HOST = json.loads((ROOT / "host.json").read_text())
QUEUES = HOST["extensions"]["queues"]


def functions(app: func.FunctionApp) -> dict[str, Any]:
    return {f.get_function_name(): f for f in app.get_functions()}


def bindings(function: Any) -> dict[str, dict[str, Any]]:
    return {b["name"]: b for b in map(json.loads, function.get_raw_bindings())}


class Out:
    """An output binding as the host passes it."""

    def __init__(self) -> None:
        self.value: Any = None

    def set(self, value: Any) -> None:
        self.value = value

    def get(self) -> Any:
        return self.value


def encode(text: str) -> str:
    """A message as the playbook (and the host's output binding) puts it: base64 when messageEncoding is base64."""
    return base64.b64encode(text.encode()).decode() if QUEUES["messageEncoding"] == "base64" else text


def deliver_all(queue: Any, poison: Any, function: Callable[[func.QueueMessage], None]) -> list[str]:
    """Run the queue trigger until the queue is empty. Returns one outcome per delivery:
    "completed", "retried" or "poisoned". Visibility timeouts are not waited for."""
    outcomes = []
    while True:
        messages = list(queue.receive_messages(max_messages=1, visibility_timeout=60))
        if not messages:
            return outcomes
        message = messages[0]
        text = message.content
        body = base64.b64decode(text) if QUEUES["messageEncoding"] == "base64" else text.encode()
        # The class the Python worker hands to a queue trigger (it carries dequeue_count).
        delivered = QueueMessage(id=message.id, body=body, dequeue_count=message.dequeue_count,
                                 pop_receipt=message.pop_receipt, insertion_time=message.inserted_on,
                                 expiration_time=message.expires_on)
        try:
            function(delivered)
        except Exception:  # the host catches whatever the function raises
            if message.dequeue_count >= QUEUES["maxDequeueCount"]:
                poison.send_message(text)
                queue.delete_message(message)
                outcomes.append("poisoned")
            else:
                queue.update_message(message, visibility_timeout=0)
                outcomes.append("retried")
        else:
            queue.delete_message(message)
            outcomes.append("completed")
