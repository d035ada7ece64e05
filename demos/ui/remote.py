"""What a panel shows for an entry served by a model server (``backend`` in models.yaml, ``demos.core.remote``):
the status line that says where it runs and what is not offered, and the code view's note in place of the
pipeline code (there is no local pipeline to reproduce: the call that is made is the OpenAI client's)."""
from __future__ import annotations

import textwrap

from demos.core import remote
from demos.core.catalog import Entry

_ROUTES = {"chat": "chat.completions.create", "vision": "chat.completions.create",
           "speech": "audio.transcriptions.create", "image": "images.generate"}
_LOCAL_ONLY = {"chat": "the device, LoRA adapters and draft models", "vision": "the device",
               "speech": "the device and word timestamps", "image": "the device and LoRA styles"}


def remote_note(entry: Entry) -> str:
    """The status line of a remote entry: the server, and what only a local pipeline offers."""
    backend = entry.backend
    assert backend is not None
    return (f"**{entry.title}** is served by the model server at `{backend.url}` (model `{backend.model}`); "
            f"{_LOCAL_ONLY.get(entry.panel, 'the device')} are that server's to choose, not offered here.")


def remote_code(entry: Entry) -> tuple[str, str]:
    """(Python, C++) for the code view: the OpenAI client call the panel makes, and why there is no pipeline code."""
    backend = entry.backend
    assert backend is not None
    why = remote.unavailable(entry, "the pipeline's own code")
    key = f'os.environ["{backend.api_key_env}"]' if backend.api_key_env else '"none"'
    call = _ROUTES.get(entry.panel, "chat.completions.create")
    if call == "chat.completions.create":
        args = 'messages=[{"role": "user", "content": "Hello"}], stream=True'
    elif call == "audio.transcriptions.create":
        args = 'file=open("audio.wav", "rb")'
    else:
        args = 'prompt="a red square", response_format="b64_json"'
    comment = "\n".join(f"# {line}" for line in textwrap.wrap(why + ".", 100))
    python = (f"{comment}\n# The panel sends this request (openai SDK):\nimport os\n\nfrom openai import OpenAI\n\n"
              f'client = OpenAI(base_url="{backend.url}", api_key={key})\n'
              f'result = client.{call}(model="{backend.model}", {args})\n')
    cpp = "\n".join(f"// {line}" for line in textwrap.wrap(why + ".", 100)) + "\n// No OpenVINO GenAI pipeline runs in this app for it: see the Python tab for the request.\n"
    return python, cpp
